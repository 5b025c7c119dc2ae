// auscope's map overlay: one explanation map (values over the model's face
// crop) drawn on the frame through an egui paint callback.
//
// The map is a run of f32s in a storage buffer: burn's own buffer when the
// model ran on this device (the map is read where the model wrote it; the
// buffer holds the model's whole map stack, and `map_start.x` says where this
// map starts), or an upload of the host values otherwise.
//
// The vertex stage places the crop's four corners (screen points, already
// through the crop -> frame -> screen transforms, so rotation and zoom are
// handled) inside the callback's viewport. The fragment stage does what
// src/core/src/explain/render.rs does on the CPU, so both draw the same
// pixels: half-pixel bilinear sampling with clamped edges, value range ->
// [0, 1], the colour map's 256-entry lookup (nearest entry), and blending
// at the chosen opacity (pipeline blend state: src-alpha over).

struct Params {
    // Crop corners in viewport points: (u, v) = (0, 0), (1, 0) | (0, 1), (1, 1).
    c01: vec4<f32>,
    c23: vec4<f32>,
    // Viewport size in points (xy), opacity, 1.0 when the target is sRGB.
    view: vec4<f32>,
    // Value range low, high; map width, height.
    range: vec4<f32>,
    // Index of the map's first value in `map_values`; unused.
    map_start: vec4<u32>,
};

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> map_values: array<f32>;
@group(0) @binding(2) var lut_tex: texture_2d<f32>;

struct VsOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VsOut {
    var corner: vec2<f32>;
    var uv: vec2<f32>;
    switch i {
        case 0u: { corner = params.c01.xy; uv = vec2<f32>(0.0, 0.0); }
        case 1u: { corner = params.c01.zw; uv = vec2<f32>(1.0, 0.0); }
        case 2u: { corner = params.c23.xy; uv = vec2<f32>(0.0, 1.0); }
        default: { corner = params.c23.zw; uv = vec2<f32>(1.0, 1.0); }
    }
    let ndc = vec2<f32>(corner.x / params.view.x * 2.0 - 1.0, 1.0 - corner.y / params.view.y * 2.0);
    var out: VsOut;
    out.pos = vec4<f32>(ndc, 0.0, 1.0);
    out.uv = uv;
    return out;
}

fn texel(x: i32, y: i32) -> f32 {
    return map_values[params.map_start.x + u32(y) * u32(params.range.z) + u32(x)];
}

// Bilinear with pixel centres at (i + 0.5) / w, clamped at the edges
// (render.rs `sample`; a buffer has no sampler, so by hand).
fn sample_map(uv: vec2<f32>) -> f32 {
    let w = params.range.z;
    let h = params.range.w;
    let x = clamp(uv.x * w - 0.5, 0.0, w - 1.0);
    let y = clamp(uv.y * h - 0.5, 0.0, h - 1.0);
    let x0 = i32(floor(x));
    let y0 = i32(floor(y));
    let x1 = min(x0 + 1, i32(w) - 1);
    let y1 = min(y0 + 1, i32(h) - 1);
    let fx = x - f32(x0);
    let fy = y - f32(y0);
    let top = texel(x0, y0) * (1.0 - fx) + texel(x1, y0) * fx;
    let bottom = texel(x0, y1) * (1.0 - fx) + texel(x1, y1) * fx;
    return top * (1.0 - fy) + bottom * fy;
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let v = sample_map(in.uv);
    let span = max(params.range.y - params.range.x, 1e-12);
    let t = clamp((v - params.range.x) / span, 0.0, 1.0);
    let entry = i32(round(t * 255.0));
    var c = textureLoad(lut_tex, vec2<i32>(entry, 0), 0).rgb;
    if params.view.w > 0.5 {
        c = srgb_to_linear(c);
    }
    return vec4<f32>(c, params.view.z);
}
