//! A tensor's storage on burn's wgpu device, handed to a render pipeline
//! on the same device without a copy: explanation maps stay where the model
//! computed them, and the GUI's shader reads them in place.
//!
//! burn 0.22 exposes the path through its `extension` feature: the tensor's
//! cubecl primitive names a buffer handle, and the wgpu server resolves the
//! handle to the wgpu buffer, byte offset and size (aligned for a storage
//! binding: cubecl binds the same ranges itself). The resolved
//! [`SharedBuffer`] holds the allocation in place, so burn neither frees nor
//! reuses those bytes while a frame may still draw them.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use burn::backend::Cube;
use burn::cubecl::wgpu::{AutoCompiler, WgpuServer};
use burn::tensor::wgpu::wgpu;
use burn::tensor::{DType, Tensor};

/// Values of a float tensor in a wgpu storage buffer: `len` f32s from byte
/// `offset` of `buffer`, row-major (the tensor is contiguous).
pub struct SharedBuffer {
    pub buffer: wgpu::Buffer,
    pub offset: u64,
    pub len: usize,
    /// cubecl's claim on the allocation (a `ManagedResource`): while it
    /// lives, the bytes are neither freed, reused nor moved.
    _allocation: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for SharedBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBuffer").field("offset", &self.offset).field("len", &self.len).finish()
    }
}

impl SharedBuffer {
    /// The storage binding of these values (size rounded up to whole f32s).
    pub fn binding(&self) -> wgpu::BufferBinding<'_> {
        wgpu::BufferBinding { buffer: &self.buffer, offset: self.offset, size: wgpu::BufferSize::new((self.len * 4) as u64) }
    }
}

/// Whether `t` lives on a cubecl device (wgpu here) rather than Flex.
fn on_cube<const D: usize>(t: &Tensor<D>) -> bool {
    t.clone().try_into_primitive::<Cube>().is_ok()
}

/// The wgpu buffer holding `t`'s values, or why there is none (a CPU
/// tensor, a non-f32 or strided one). Submits burn's pending work on the
/// shared queue first, so a render submitted after this call reads finished
/// values. Blocks while burn's server resolves the handle: call it on the
/// thread that computed `t`, not the UI thread.
pub fn share<const D: usize>(t: &Tensor<D>) -> Result<SharedBuffer, String> {
    let p = t.clone().try_into_primitive::<Cube>().map_err(|_| "the tensor is not on a GPU device".to_string())?;
    if p.dtype != DType::F32 {
        return Err(format!("the tensor is {:?}; the overlay reads f32", p.dtype));
    }
    if !p.is_contiguous() {
        return Err("the tensor is strided; the overlay reads contiguous values".into());
    }
    let len = p.meta.shape().num_elements();
    let resource = p
        .client
        .get_resource::<WgpuServer<AutoCompiler>>(p.handle.clone())
        .map_err(|e| format!("burn's wgpu server gave no buffer: {e}"))?;
    let r = resource.resource();
    if r.size < (len * 4) as u64 {
        return Err(format!("the buffer range holds {} bytes for {len} values", r.size));
    }
    let (buffer, offset) = (r.buffer.clone(), r.offset);
    p.client.flush().map_err(|e| format!("submitting burn's work: {e}"))?;
    Ok(SharedBuffer { buffer, offset, len, _allocation: Box::new(resource) })
}

/// A tensor on the GPU with its shared buffer, resolved once (on first use)
/// and kept: clones share both.
#[derive(Clone)]
pub struct DeviceValues<const D: usize> {
    tensor: Tensor<D>,
    shared: Arc<OnceLock<Result<Arc<SharedBuffer>, String>>>,
}

impl<const D: usize> std::fmt::Debug for DeviceValues<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceValues").field("dims", &self.tensor.dims()).field("shared", &self.shared.get()).finish()
    }
}

impl<const D: usize> DeviceValues<D> {
    /// `t` when it lives on the GPU (None on the CPU: nothing to share).
    pub fn of(t: &Tensor<D>) -> Option<Self> {
        on_cube(t).then(|| Self { tensor: t.clone(), shared: Arc::default() })
    }

    pub fn tensor(&self) -> &Tensor<D> {
        &self.tensor
    }

    /// The shared buffer ([`share`]; the first call resolves it and blocks).
    pub fn shared(&self) -> Result<Arc<SharedBuffer>, String> {
        self.shared.get_or_init(|| share(&self.tensor).map(Arc::new)).clone()
    }

    /// The shared buffer if it was resolved already (never blocks).
    pub fn resolved(&self) -> Option<Result<Arc<SharedBuffer>, String>> {
        self.shared.get().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// Copy `len` f32s from the shared range with the device's own queue
    /// and read them back: what a shader bound to the range would see.
    fn read_range(setup: &burn::tensor::wgpu::WgpuSetup, s: &SharedBuffer) -> Vec<f32> {
        let size = (s.len * 4) as u64;
        let staging = setup.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("test readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = setup.device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        encoder.copy_buffer_to_buffer(&s.buffer, s.offset, &staging, 0, size);
        setup.queue.submit([encoder.finish()]);
        let slice = staging.slice(..);
        slice.map_async(wgpu::MapMode::Read, |r| r.expect("map"));
        setup.device.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
        let bytes = slice.get_mapped_range().expect("mapped");
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }

    #[test]
    fn a_gpu_tensor_is_read_in_place_and_a_cpu_one_is_refused() {
        // lavapipe on CI; a hardware GPU where there is one.
        let compute = crate::Compute::init(crate::DeviceChoice::Wgpu)
            .unwrap_or_else(|e| panic!("wgpu must be available (install mesa-vulkan-drivers): {e}"));
        let setup = compute.wgpu.as_ref().expect("wgpu setup");
        let device = &compute.device;
        // A result of GPU work (not an upload), narrowed to its second half:
        // 256 bytes in, so burn keeps the allocation and offsets the handle.
        let values: Vec<f32> = (0..2 * 8 * 8).map(|i| i as f32 * 0.5).collect();
        let t = Tensor::<3>::from_data(TensorData::new(values, [2, 8, 8]), device);
        let t = (t * 2.0 + 1.0).narrow(0, 1, 1);
        let want: Vec<f32> = (64..128).map(|i| i as f32 + 1.0).collect();
        let maps = DeviceValues::of(&t).expect("on the GPU");
        assert!(maps.resolved().is_none(), "resolved lazily");
        let shared = maps.shared().expect("shared");
        assert_eq!(shared.len, 64);
        assert_eq!(shared.offset % setup.device.limits().min_storage_buffer_offset_alignment as u64, 0, "bindable offset");
        assert!(shared.buffer.usage().contains(wgpu::BufferUsages::STORAGE));
        assert_eq!(read_range(setup, &shared), want);
        assert!(Arc::ptr_eq(&shared, &maps.clone().shared().expect("again")), "resolved once, shared by clones");
        // The claim keeps the bytes: with the tensor gone, new GPU work
        // does not land on them.
        drop(maps);
        drop(t);
        for i in 0..8 {
            let _ = (Tensor::<3>::ones([1, 8, 8], device) * i as f32).into_data();
        }
        assert_eq!(read_range(setup, &shared), want, "the range survives later allocations");

        let cpu = Tensor::<3>::ones([1, 2, 2], &Device::flex());
        assert!(DeviceValues::of(&cpu).is_none());
        assert!(share(&cpu).expect_err("CPU tensor").contains("not on a GPU"));
    }
}
