//! The graph executor's CPU path: MediaPipe's networks in TFLite's own NHWC
//! layout with weights packed once at load, each convolution fused with its
//! bias and the activation that follows it, 1x1 and im2col convolutions on
//! the `gemm` crate, and depthwise convolutions as channel-vectorised loops
//! compiled for AVX2/FMA where the CPU has it.
//!
//! Why not burn's Flex ops here: these networks are ~200 tiny ops, and per
//! op Flex converts NCHW <-> NHWC, allocates, and applies bias and PReLU
//! as separate passes; docs/benchmarks.md has the measurements. On wgpu
//! the same graph runs as burn ops (`Graph::forward_tensors`).

use std::collections::HashMap;
use std::sync::Mutex;

use multiversion::multiversion;

use super::{GraphOutput, OpSpec, batch_kept, same_padding};
use crate::error::CoreError;

#[derive(Debug, Clone)]
enum Act {
    None,
    Relu,
    Relu6,
    /// Per-channel slopes.
    Prelu(Vec<f32>),
}

impl Act {
    fn of(name: Option<&str>) -> Result<Self, CoreError> {
        match name.unwrap_or("NONE") {
            "NONE" => Ok(Act::None),
            "RELU" => Ok(Act::Relu),
            "RELU6" => Ok(Act::Relu6),
            other => Err(CoreError::Graph(format!("unsupported fused activation {other}"))),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    same: bool,
}

impl Window {
    fn out_and_pad(&self, h: usize, w: usize) -> ([usize; 2], [usize; 2]) {
        let eff = |k: usize, d: usize| (k - 1) * d + 1;
        if self.same {
            let (pt, _) = same_padding(h, self.kernel[0], self.stride[0], self.dilation[0]);
            let (pl, _) = same_padding(w, self.kernel[1], self.stride[1], self.dilation[1]);
            ([h.div_ceil(self.stride[0]), w.div_ceil(self.stride[1])], [pt, pl])
        } else {
            let oh = (h.saturating_sub(eff(self.kernel[0], self.dilation[0]))) / self.stride[0] + 1;
            let ow = (w.saturating_sub(eff(self.kernel[1], self.dilation[1]))) / self.stride[1] + 1;
            ([oh, ow], [0, 0])
        }
    }
}

#[derive(Debug)]
enum Kind {
    /// Weights [kh * kw * cin, cout] (row-major), bias [cout].
    Conv { win: Window, cin: usize, cout: usize, weight: Vec<f32>, bias: Vec<f32>, act: Act },
    /// Weights [kh, kw, c], bias [c].
    Depthwise { win: Window, weight: Vec<f32>, bias: Vec<f32>, act: Act },
    Add(Act),
    MaxPool(Window),
    /// NHWC (before, after) per dimension.
    Pad([[usize; 2]; 4]),
    Resize { size: [usize; 2], align_corners: bool },
    Reshape(Vec<usize>),
    Concat(i64),
    Logistic,
    Act(Act),
}

#[derive(Debug)]
struct Step {
    kind: Kind,
    inputs: Vec<usize>,
    output: usize,
}

/// A value: row-major data in TFLite's shape (NHWC for 4-D).
struct Value {
    data: Vec<f32>,
    shape: Vec<usize>,
}

/// A graph compiled for the CPU.
pub struct CpuPlan {
    steps: Vec<Step>,
    input: usize,
    outputs: Vec<(usize, String)>,
    /// Constants read as activations (not weights), by id.
    constants: HashMap<usize, (Vec<f32>, Vec<usize>)>,
    /// Per step, the values whose last reader it is (their buffers go back to the pool).
    frees: Vec<Vec<usize>>,
    /// Buffers reused across calls; concurrent calls simply allocate more.
    pool: Mutex<Vec<Vec<f32>>>,
}

fn err(m: impl Into<String>) -> CoreError {
    CoreError::Graph(m.into())
}

fn four(shape: &[usize]) -> Result<[usize; 4], CoreError> {
    <[usize; 4]>::try_from(shape).map_err(|_| err(format!("expected a 4-D value, got {shape:?}")))
}

impl CpuPlan {
    /// Compile `ops` with `constants` (id -> row-major values and TFLite shape).
    pub(super) fn new(ops: &[OpSpec], input: usize, outputs: Vec<(usize, String)>, mut constants: HashMap<usize, (Vec<f32>, Vec<usize>)>) -> Result<Self, CoreError> {
        let produced: std::collections::HashSet<usize> = ops.iter().flat_map(|o| o.outputs.first().copied()).collect();
        let readers = |id: usize| ops.iter().filter(|o| o.inputs.contains(&id)).count() + outputs.iter().filter(|(o, _)| *o == id).count();
        // Weights may be shared between ops: cloned, not taken.
        let weight = |id: usize| constants.get(&id).cloned().ok_or_else(|| err(format!("missing constant t{id}")));
        let mut steps: Vec<Step> = Vec::new();
        let mut i = 0;
        while i < ops.len() {
            let op = &ops[i];
            let o = &op.options;
            let output = *op.outputs.first().ok_or_else(|| err("op without output"))?;
            let win = |kernel: [usize; 2]| Window { kernel, stride: o.stride.unwrap_or(kernel), dilation: o.dilation.unwrap_or([1, 1]), same: o.padding.as_deref() == Some("SAME") };
            let mut kind = match op.op.as_str() {
                "CONV_2D" | "DEPTHWISE_CONV_2D" => {
                    let wid = *op.inputs.get(1).ok_or_else(|| err("conv without weights"))?;
                    let (w, shape) = weight(wid)?;
                    let [a, kh, kw, d] = four(&shape)?;
                    let bias = match op.inputs.get(2) {
                        Some(&b) => weight(b)?.0,
                        None => vec![0.0; if op.op == "CONV_2D" { a } else { d }],
                    };
                    let act = Act::of(o.activation.as_deref())?;
                    let mut wn = win([kh, kw]);
                    wn.stride = o.stride.unwrap_or([1, 1]);
                    if op.op == "CONV_2D" {
                        // OHWI -> [(ky, kx, ci), o]
                        let (cout, cin) = (a, d);
                        let mut packed = vec![0.0; kh * kw * cin * cout];
                        for oc in 0..cout {
                            for r in 0..kh * kw * cin {
                                packed[r * cout + oc] = w[oc * kh * kw * cin + r];
                            }
                        }
                        Kind::Conv { win: wn, cin, cout, weight: packed, bias, act }
                    } else {
                        if a != 1 || bias.len() != d {
                            return Err(err(format!("depthwise weights of shape {shape:?} (depth multiplier 1 expected)")));
                        }
                        Kind::Depthwise { win: wn, weight: w, bias, act }
                    }
                }
                "ADD" => Kind::Add(Act::of(o.activation.as_deref())?),
                "MAX_POOL_2D" => {
                    if !matches!(Act::of(o.activation.as_deref())?, Act::None) {
                        return Err(err("fused activation on MAX_POOL_2D"));
                    }
                    Kind::MaxPool(win(o.filter.unwrap_or([2, 2])))
                }
                "PAD" => {
                    let p = o.paddings.as_ref().ok_or_else(|| err("PAD without paddings"))?;
                    let p: [[usize; 2]; 4] = <[[usize; 2]; 4]>::try_from(p.as_slice()).map_err(|_| err("PAD expects 4-D paddings"))?;
                    Kind::Pad(p)
                }
                "RESIZE_BILINEAR" => Kind::Resize { size: o.size.ok_or_else(|| err("RESIZE_BILINEAR without size"))?, align_corners: o.align_corners.unwrap_or(false) },
                "RESHAPE" => Kind::Reshape(o.shape.clone().ok_or_else(|| err("RESHAPE without shape"))?),
                "CONCATENATION" => Kind::Concat(o.axis.unwrap_or(0)),
                "LOGISTIC" => Kind::Logistic,
                "RELU" => Kind::Act(Act::Relu),
                "PRELU" => Kind::Act(Act::Prelu(weight(*op.inputs.get(1).ok_or_else(|| err("PRELU without slopes"))?)?.0)),
                other => return Err(err(format!("unsupported op {other}"))),
            };
            let inputs: Vec<usize> = match &kind {
                Kind::Conv { .. } | Kind::Depthwise { .. } | Kind::Act(_) => vec![op.inputs[0]],
                _ => op.inputs.clone(),
            };
            let mut output = output;
            // Fuse an activation that only this op's output feeds.
            if let Some(next) = ops.get(i + 1)
                && next.inputs.first() == Some(&output)
                && readers(output) == 1
                && matches!(next.op.as_str(), "RELU" | "PRELU")
            {
                let fused = if next.op == "RELU" { Act::Relu } else { Act::Prelu(weight(*next.inputs.get(1).ok_or_else(|| err("PRELU without slopes"))?)?.0) };
                let slot = match &mut kind {
                    Kind::Conv { act, .. } | Kind::Depthwise { act, .. } | Kind::Add(act) if matches!(act, Act::None) => Some(act),
                    _ => None,
                };
                if let Some(slot) = slot {
                    *slot = fused;
                    output = *next.outputs.first().ok_or_else(|| err("op without output"))?;
                    i += 1;
                }
            }
            steps.push(Step { kind, inputs, output });
            i += 1;
        }
        // Constants still referenced as activations (e.g. an ADD operand).
        let activations: HashMap<usize, (Vec<f32>, Vec<usize>)> = steps
            .iter()
            .flat_map(|s| s.inputs.iter().copied())
            .filter(|id| !produced.contains(id) && *id != input)
            .filter_map(|id| constants.remove(&id).map(|c| (id, c)))
            .collect();
        let mut last: HashMap<usize, usize> = HashMap::new();
        for (k, s) in steps.iter().enumerate() {
            for &id in &s.inputs {
                last.insert(id, k);
            }
        }
        let mut frees = vec![Vec::new(); steps.len()];
        for (id, k) in last {
            if !outputs.iter().any(|(o, _)| *o == id) && !activations.contains_key(&id) {
                frees[k].push(id);
            }
        }
        Ok(CpuPlan { steps, input, outputs, constants: activations, frees, pool: Mutex::new(Vec::new()) })
    }

    /// Run on `n` NHWC images (`data` is [n, h, w, c], row-major).
    pub fn forward(&self, data: Vec<f32>, shape: [usize; 4]) -> Result<Vec<GraphOutput>, CoreError> {
        let mut pool = self.pool.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        let mut values: HashMap<usize, Value> = HashMap::new();
        values.insert(self.input, Value { data, shape: shape.to_vec() });
        for (k, step) in self.steps.iter().enumerate() {
            let out = self.run(step, &mut values, &self.frees[k], &mut pool)?;
            values.insert(step.output, out);
            for id in &self.frees[k] {
                if let Some(v) = values.remove(id) {
                    pool.push(v.data);
                }
            }
        }
        let outputs = self
            .outputs
            .iter()
            .map(|(id, name)| {
                let v = values.get(id).ok_or_else(|| err(format!("output {name} was not computed")))?;
                Ok(GraphOutput { name: name.clone(), shape: v.shape.clone(), values: v.data.clone() })
            })
            .collect();
        for (_, v) in values {
            pool.push(v.data);
        }
        if let Ok(mut p) = self.pool.lock() {
            // Keep the largest few; a batch change should not hoard memory.
            pool.sort_by_key(|b| std::cmp::Reverse(b.capacity()));
            pool.truncate(8);
            *p = pool;
        }
        outputs
    }

    fn get<'a>(&'a self, values: &'a HashMap<usize, Value>, id: usize) -> Result<(&'a [f32], &'a [usize]), CoreError> {
        if let Some(v) = values.get(&id) {
            return Ok((&v.data, &v.shape));
        }
        self.constants.get(&id).map(|(d, s)| (d.as_slice(), s.as_slice())).ok_or_else(|| err(format!("value t{id} is missing")))
    }

    fn run(&self, step: &Step, values: &mut HashMap<usize, Value>, frees: &[usize], pool: &mut Vec<Vec<f32>>) -> Result<Value, CoreError> {
        // Ops that can work in place take their input's buffer when this
        // step is its last reader.
        let first = step.inputs[0];
        let reads_twice = step.inputs[1..].contains(&first);
        if frees.contains(&first) && !reads_twice && matches!(step.kind, Kind::Reshape(_) | Kind::Act(_) | Kind::Logistic | Kind::Add(_)) {
            if let Some(mut v) = values.remove(&first) {
                let c = *v.shape.last().unwrap_or(&1);
                match &step.kind {
                    Kind::Reshape(shape) => v.shape = batch_kept(shape, &v.shape),
                    Kind::Act(act) => activate(&mut v.data, c, act),
                    Kind::Logistic => v.data.iter_mut().for_each(|x| *x = 1.0 / (1.0 + (-*x).exp())),
                    Kind::Add(act) => {
                        let (y, ys) = self.get(values, *step.inputs.get(1).ok_or_else(|| err("ADD needs two inputs"))?)?;
                        if v.shape != ys {
                            return Err(err(format!("ADD of shapes {:?} and {ys:?}", v.shape)));
                        }
                        add_into(&mut v.data, y);
                        activate(&mut v.data, c, act);
                    }
                    _ => {}
                }
                return Ok(v);
            }
        }
        let values = &*values;
        let (x, xs) = self.get(values, first)?;
        // A pooled buffer of at least `len`, empty: kernels fill it.
        let mut take = |len: usize| -> Vec<f32> {
            let i = pool.iter().position(|b| b.capacity() >= len);
            let mut b = i.map(|i| pool.swap_remove(i)).unwrap_or_default();
            b.clear();
            b.reserve(len);
            b
        };
        Ok(match &step.kind {
            Kind::Conv { win, cin, cout, weight, bias, act } => {
                let [n, h, w, c] = four(xs)?;
                if c != *cin {
                    return Err(err(format!("conv expects {cin} channels, got {c}")));
                }
                let ([oh, ow], pad) = win.out_and_pad(h, w);
                let m = n * oh * ow;
                let mut out = take(m * cout);
                for _ in 0..m {
                    out.extend_from_slice(bias);
                }
                let direct = win.kernel == [1, 1] && win.stride == [1, 1] && pad == [0, 0];
                let k = win.kernel[0] * win.kernel[1] * cin;
                let cols = (!direct).then(|| {
                    let mut buf = take(m * k);
                    buf.resize(m * k, 0.0);
                    im2col(x, [n, h, w, c], win, [oh, ow], pad, &mut buf);
                    buf
                });
                matmul_acc(cols.as_deref().unwrap_or(x), weight, &mut out, m, k, *cout);
                if let Some(c) = cols {
                    pool.push(c);
                }
                activate(&mut out, *cout, act);
                Value { data: out, shape: vec![n, oh, ow, *cout] }
            }
            Kind::Depthwise { win, weight, bias, act } => {
                let [n, h, w, c] = four(xs)?;
                if c != bias.len() {
                    return Err(err(format!("depthwise conv expects {} channels, got {c}", bias.len())));
                }
                let ([oh, ow], pad) = win.out_and_pad(h, w);
                let mut out = take(n * oh * ow * c);
                out.resize(n * oh * ow * c, 0.0);
                depthwise(x, [n, h, w, c], weight, bias, win, [oh, ow], pad, &mut out);
                activate(&mut out, c, act);
                Value { data: out, shape: vec![n, oh, ow, c] }
            }
            Kind::Add(act) => {
                let (y, ys) = self.get(values, *step.inputs.get(1).ok_or_else(|| err("ADD needs two inputs"))?)?;
                if xs != ys {
                    return Err(err(format!("ADD of shapes {xs:?} and {ys:?}")));
                }
                let mut out = take(x.len());
                out.extend_from_slice(x);
                add_into(&mut out, y);
                let c = *xs.last().unwrap_or(&1);
                activate(&mut out, c, act);
                Value { data: out, shape: xs.to_vec() }
            }
            Kind::MaxPool(win) => {
                let [n, h, w, c] = four(xs)?;
                let ([oh, ow], pad) = win.out_and_pad(h, w);
                let mut out = take(n * oh * ow * c);
                out.resize(n * oh * ow * c, f32::NEG_INFINITY);
                max_pool(x, [n, h, w, c], win, [oh, ow], pad, &mut out);
                Value { data: out, shape: vec![n, oh, ow, c] }
            }
            Kind::Pad(p) => {
                let [n, h, w, c] = four(xs)?;
                let [on, oh, ow, oc] = [n + p[0][0] + p[0][1], h + p[1][0] + p[1][1], w + p[2][0] + p[2][1], c + p[3][0] + p[3][1]];
                let mut out = take(on * oh * ow * oc);
                out.resize(on * oh * ow * oc, 0.0);
                for b in 0..n {
                    for y in 0..h {
                        for xx in 0..w {
                            let src = ((b * h + y) * w + xx) * c;
                            let dst = (((b + p[0][0]) * oh + y + p[1][0]) * ow + xx + p[2][0]) * oc + p[3][0];
                            out[dst..dst + c].copy_from_slice(&x[src..src + c]);
                        }
                    }
                }
                Value { data: out, shape: vec![on, oh, ow, oc] }
            }
            Kind::Resize { size, align_corners } => {
                let [n, h, w, c] = four(xs)?;
                let mut out = take(n * size[0] * size[1] * c);
                out.resize(n * size[0] * size[1] * c, 0.0);
                resize_bilinear(x, [n, h, w, c], *size, *align_corners, &mut out);
                Value { data: out, shape: vec![n, size[0], size[1], c] }
            }
            Kind::Reshape(shape) => {
                let mut out = take(x.len());
                out.extend_from_slice(x);
                Value { data: out, shape: batch_kept(shape, xs) }
            }
            Kind::Concat(axis) => {
                let parts: Vec<(&[f32], &[usize])> = step.inputs.iter().map(|&id| self.get(values, id)).collect::<Result<_, _>>()?;
                let rank = xs.len();
                let axis = if *axis < 0 { (rank as i64 + axis) as usize } else { *axis as usize };
                if axis >= rank {
                    return Err(err("CONCATENATION axis out of range"));
                }
                let outer: usize = xs[..axis].iter().product();
                let mut shape = xs.to_vec();
                shape[axis] = parts.iter().map(|(_, s)| s[axis]).sum();
                let mut out = take(shape.iter().product());
                for o in 0..outer {
                    for (d, s) in &parts {
                        let inner: usize = s[axis..].iter().product();
                        out.extend_from_slice(&d[o * inner..(o + 1) * inner]);
                    }
                }
                Value { data: out, shape }
            }
            Kind::Logistic => {
                let mut out = take(x.len());
                out.extend(x.iter().map(|v| 1.0 / (1.0 + (-v).exp())));
                Value { data: out, shape: xs.to_vec() }
            }
            Kind::Act(act) => {
                let mut out = take(x.len());
                out.extend_from_slice(x);
                activate(&mut out, *xs.last().unwrap_or(&1), act);
                Value { data: out, shape: xs.to_vec() }
            }
        })
    }
}

/// out[m, n] += a[m, k] * b[k, n], all row-major.
fn matmul_acc(a: &[f32], b: &[f32], out: &mut [f32], m: usize, k: usize, n: usize) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    gemm_rows(a, b, out, m, k, n);
}

fn gemm_rows(a: &[f32], b: &[f32], out: &mut [f32], m: usize, k: usize, n: usize) {
    if a.len() < m * k || b.len() < k * n || out.len() < m * n {
        return;
    }
    // SAFETY: the three slices hold at least m*k, k*n and m*n elements
    // (checked above) and the strides describe row-major matrices of
    // exactly those sizes; `out` does not alias `a` or `b` (a distinct &mut).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Rows (ky, kx, ci) per output position; outside the image reads zero.
fn im2col(x: &[f32], [n, h, w, c]: [usize; 4], win: &Window, [oh, ow]: [usize; 2], [pt, pl]: [usize; 2], cols: &mut [f32]) {
    let [kh, kw] = win.kernel;
    let k = kh * kw * c;
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                let row = &mut cols[((b * oh + oy) * ow + ox) * k..][..k];
                for ky in 0..kh {
                    let iy = (oy * win.stride[0] + ky * win.dilation[0]) as isize - pt as isize;
                    for kx in 0..kw {
                        let ix = (ox * win.stride[1] + kx * win.dilation[1]) as isize - pl as isize;
                        let dst = &mut row[(ky * kw + kx) * c..][..c];
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            dst.fill(0.0);
                        } else {
                            let src = ((b * h + iy as usize) * w + ix as usize) * c;
                            dst.copy_from_slice(&x[src..src + c]);
                        }
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn mul_acc(out: &mut [f32], x: &[f32], w: &[f32]) {
    for ((o, a), b) in out.iter_mut().zip(x).zip(w) {
        *o += a * b;
    }
}

#[allow(clippy::too_many_arguments)]
fn depthwise(x: &[f32], [n, h, w, c]: [usize; 4], weight: &[f32], bias: &[f32], win: &Window, [oh, ow]: [usize; 2], pad: [usize; 2], out: &mut [f32]) {
    for (row, orow) in out[..n * oh * ow * c].chunks_exact_mut(ow * c).enumerate() {
        depthwise_row(x, [h, w, c], weight, bias, win, (row / oh, row % oh), pad, orow);
    }
}

/// One output row of a depthwise convolution: tap by tap, the valid output
/// columns form one range, and 8 channels at a time keep their weights in
/// a register. Built per instruction set so the channel loop vectorises.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx"))]
#[allow(clippy::too_many_arguments)]
fn depthwise_row(x: &[f32], [h, w, c]: [usize; 3], weight: &[f32], bias: &[f32], win: &Window, (b, oy): (usize, usize), [pt, pl]: [usize; 2], orow: &mut [f32]) {
    const B: usize = 8;
    let [kh, kw] = win.kernel;
    let [sy, sx] = win.stride;
    let [dy, dx] = win.dilation;
    let ow = orow.len() / c.max(1);
    for px in orow.chunks_exact_mut(c) {
        px.copy_from_slice(bias);
    }
    for ky in 0..kh {
        let iy = (oy * sy + ky * dy) as isize - pt as isize;
        if iy < 0 || iy >= h as isize {
            continue;
        }
        let irow = &x[(b * h + iy as usize) * w * c..][..w * c];
        for kx in 0..kw {
            // Output column ox reads input column ox * sx + off.
            let off = (kx * dx) as isize - pl as isize;
            let first = if off < 0 { ((-off) as usize).div_ceil(sx) } else { 0 };
            let last = if (w as isize - 1 - off) < 0 { 0 } else { (((w as isize - 1 - off) as usize) / sx + 1).min(ow) };
            if first >= last {
                continue;
            }
            let wk = &weight[(ky * kw + kx) * c..][..c];
            if c % B == 0 {
                for cb in (0..c).step_by(B) {
                    let wv = &wk[cb..cb + B];
                    for ox in first..last {
                        let ix = ((ox * sx) as isize + off) as usize;
                        let o = &mut orow[ox * c + cb..ox * c + cb + B];
                        let i = &irow[ix * c + cb..ix * c + cb + B];
                        for k in 0..B {
                            o[k] += i[k] * wv[k];
                        }
                    }
                }
            } else {
                for ox in first..last {
                    let ix = ((ox * sx) as isize + off) as usize;
                    mul_acc(&mut orow[ox * c..][..c], &irow[ix * c..][..c], wk);
                }
            }
        }
    }
}

#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx"))]
fn add_into(out: &mut [f32], y: &[f32]) {
    for (o, b) in out.iter_mut().zip(y) {
        *o += b;
    }
}

#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx"))]
fn prelu_rows(out: &mut [f32], c: usize, alpha: &[f32]) {
    for row in out.chunks_exact_mut(c) {
        for (v, a) in row.iter_mut().zip(alpha) {
            *v = if *v >= 0.0 { *v } else { *v * a };
        }
    }
}

fn activate(out: &mut [f32], c: usize, act: &Act) {
    match act {
        Act::None => {}
        Act::Relu => out.iter_mut().for_each(|v| *v = v.max(0.0)),
        Act::Relu6 => out.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0)),
        Act::Prelu(alpha) if alpha.len() == c => prelu_rows(out, c, alpha),
        Act::Prelu(alpha) => {
            // Slopes over the whole value (not per channel): apply elementwise, repeating.
            let n = alpha.len().max(1);
            for (i, v) in out.iter_mut().enumerate() {
                if *v < 0.0 {
                    *v *= alpha.get(i % n).copied().unwrap_or(0.0);
                }
            }
        }
    }
}

#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx"))]
fn max_pool(x: &[f32], [n, h, w, c]: [usize; 4], win: &Window, [oh, ow]: [usize; 2], [pt, pl]: [usize; 2], out: &mut [f32]) {
    let [kh, kw] = win.kernel;
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                let o = &mut out[((b * oh + oy) * ow + ox) * c..][..c];
                for ky in 0..kh {
                    let iy = (oy * win.stride[0] + ky) as isize - pt as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    for kx in 0..kw {
                        let ix = (ox * win.stride[1] + kx) as isize - pl as isize;
                        if ix < 0 || ix >= w as isize {
                            continue;
                        }
                        let src = ((b * h + iy as usize) * w + ix as usize) * c;
                        for (v, s) in o.iter_mut().zip(&x[src..src + c]) {
                            *v = v.max(*s);
                        }
                    }
                }
            }
        }
    }
}

/// Bilinear resize; without align_corners, half-pixel centres (TFLite's
/// half_pixel_centers, PyTorch's align_corners=False), source clamped at 0.
fn resize_bilinear(x: &[f32], [n, h, w, c]: [usize; 4], [oh, ow]: [usize; 2], align_corners: bool, out: &mut [f32]) {
    let coord = |o: usize, out_len: usize, in_len: usize| -> (usize, usize, f32) {
        let src = if align_corners {
            if out_len > 1 { o as f32 * (in_len - 1) as f32 / (out_len - 1) as f32 } else { 0.0 }
        } else {
            ((o as f32 + 0.5) * in_len as f32 / out_len as f32 - 0.5).max(0.0)
        };
        let i0 = (src.floor() as usize).min(in_len - 1);
        let i1 = (i0 + 1).min(in_len - 1);
        (i0, i1, src - i0 as f32)
    };
    for b in 0..n {
        for oy in 0..oh {
            let (y0, y1, fy) = coord(oy, oh, h);
            for ox in 0..ow {
                let (x0, x1, fx) = coord(ox, ow, w);
                let px = |y: usize, xx: usize| &x[((b * h + y) * w + xx) * c..][..c];
                let (a, bb, cc, d) = (px(y0, x0), px(y0, x1), px(y1, x0), px(y1, x1));
                let o = &mut out[((b * oh + oy) * ow + ox) * c..][..c];
                for i in 0..c {
                    let top = a[i] + (bb[i] - a[i]) * fx;
                    let bottom = cc[i] + (d[i] - cc[i]) * fx;
                    o[i] = top + (bottom - top) * fy;
                }
            }
        }
    }
}
