//! Draws an explanation map over the frame on the GPU: shaders/overlay.wgsl
//! through an egui paint callback, on the wgpu device egui renders with
//! (the one burn computes on when there is a GPU).
//!
//! The shader reads the map from a storage buffer. When the model ran on
//! the same wgpu device, that buffer is burn's own ([`SharedBuffer`]): the
//! map is drawn where the model computed it, with no copy. Otherwise (models
//! on the CPU, or predefined maps made on the CPU) the host values are
//! written to a buffer of ours when the map changes (a few kB: maps are at
//! model resolution, 2x2 to 64x64). The colour map is a 256x1 lookup
//! texture; range, opacity and the crop's corners on screen are uniforms, so
//! dragging a slider or panning costs one uniform write.

use std::sync::Arc;

use auscope_core::explain::render::Colormap;
use auscope_core::shared_buffer::SharedBuffer;
use eframe::egui;
use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, RenderState, ScreenDescriptor, wgpu};

const SHADER: &str = include_str!("../shaders/overlay.wgsl");

/// One map to draw. `id` changes whenever the values do.
#[derive(Debug)]
pub struct MapData {
    pub id: u64,
    pub width: u32,
    pub height: u32,
    /// The host copy: drawn by the CPU fallback, uploaded when `shared` is None.
    pub values: Vec<f32>,
    /// The map in place on the render device: the buffer of the model's
    /// whole map stack, and the index of this map's first value in it.
    pub shared: Option<(Arc<SharedBuffer>, u32)>,
}

impl MapData {
    /// Where the shader reads the map from, for the timings line.
    pub fn source(&self) -> &'static str {
        if self.shared.is_some() { "drawn from the model's GPU buffer" } else { "uploaded from the CPU" }
    }
}

/// What one frame's overlay looks like.
#[derive(Debug, Clone)]
pub struct OverlayDraw {
    pub map: Arc<MapData>,
    pub colormap: Colormap,
    pub opacity: f32,
    pub range: [f32; 2],
    /// Crop corners (u, v) = (0,0), (1,0), (0,1), (1,1) in screen points.
    pub corners: [egui::Pos2; 4],
}

/// Pipeline and lookup tables, created once per render state.
struct Resources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    luts: Vec<(Colormap, wgpu::TextureView)>,
    srgb_target: bool,
    /// One per viewer drawn in the same frame (side-by-side comparison):
    /// each has its own uniforms and map, since every callback's `prepare`
    /// runs before any `paint`.
    slots: Vec<Slot>,
}

struct Slot {
    uniforms: wgpu::Buffer,
    /// The map bound (kept alive while drawn: it may hold burn's buffer),
    /// our upload of it when it is not shared, and the bind group.
    current: Option<(Arc<MapData>, Colormap, Option<wgpu::Buffer>, wgpu::BindGroup)>,
}

/// Viewers that can show a map in the same frame.
pub const SLOTS: usize = 2;

/// Uniform bytes: four vec4<f32> and one vec4<u32> (shaders/overlay.wgsl `Params`).
const PARAMS_BYTES: u64 = 80;

/// Create the overlay pipeline in egui's renderer; without it the viewer
/// falls back to a CPU-blended texture. Devices that cannot read storage
/// buffers in a fragment shader (WebGL-class limits) get the fallback.
pub fn install(render_state: &RenderState) {
    let device = &render_state.device;
    if device.limits().max_storage_buffers_per_shader_stage == 0 {
        return;
    }
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("auscope overlay"),
        source: wgpu::ShaderSource::Wgsl(SHADER.into()),
    });
    let texture_entry = |binding| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty: wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    };
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("auscope overlay"),
        entries: &[
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
            wgpu::BindGroupLayoutEntry {
                binding: 1,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: true },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
            texture_entry(2),
        ],
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("auscope overlay"),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let format = render_state.target_format;
    let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("auscope overlay"),
        layout: Some(&pipeline_layout),
        vertex: wgpu::VertexState {
            module: &module,
            entry_point: Some("vs_main"),
            buffers: &[],
            compilation_options: wgpu::PipelineCompilationOptions::default(),
        },
        primitive: wgpu::PrimitiveState {
            topology: wgpu::PrimitiveTopology::TriangleStrip,
            ..wgpu::PrimitiveState::default()
        },
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        fragment: Some(wgpu::FragmentState {
            module: &module,
            entry_point: Some("fs_main"),
            targets: &[Some(wgpu::ColorTargetState {
                format,
                blend: Some(wgpu::BlendState::ALPHA_BLENDING),
                write_mask: wgpu::ColorWrites::ALL,
            })],
            compilation_options: wgpu::PipelineCompilationOptions::default(),
        }),
        multiview_mask: None,
        cache: None,
    });
    let slots = (0..SLOTS)
        .map(|_| Slot {
            uniforms: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("auscope overlay params"),
                size: PARAMS_BYTES,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            current: None,
        })
        .collect();
    let luts = Colormap::ALL
        .into_iter()
        .map(|c| {
            let bytes: Vec<u8> = c.lut().into_iter().flatten().collect();
            let t = texture(device, &render_state.queue, "auscope colour map", 256, 1, wgpu::TextureFormat::Rgba8Unorm, &bytes, 4);
            (c, t.create_view(&wgpu::TextureViewDescriptor::default()))
        })
        .collect();
    render_state.renderer.write().callback_resources.insert(Resources {
        pipeline,
        layout,
        luts,
        srgb_target: format.is_srgb(),
        slots,
    });
}

#[allow(clippy::too_many_arguments)]
fn texture(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    label: &str,
    width: u32,
    height: u32,
    format: wgpu::TextureFormat,
    bytes: &[u8],
    texel_bytes: u32,
) -> wgpu::Texture {
    let size = wgpu::Extent3d { width, height, depth_or_array_layers: 1 };
    let t = device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    queue.write_texture(
        wgpu::TexelCopyTextureInfo { texture: &t, mip_level: 0, origin: wgpu::Origin3d::ZERO, aspect: wgpu::TextureAspect::All },
        bytes,
        wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(texel_bytes * width), rows_per_image: Some(height) },
        size,
    );
    t
}

/// True when [`install`] ran for this renderer.
pub fn installed(render_state: &RenderState) -> bool {
    render_state.renderer.read().callback_resources.get::<Resources>().is_some()
}

/// The paint callback for `draw` over the viewer rect `view`.
/// `slot` < [`SLOTS`]: which viewer draws (each viewer its own).
pub fn paint_callback(view: egui::Rect, draw: OverlayDraw, slot: usize) -> egui::PaintCallback {
    egui_wgpu::Callback::new_paint_callback(view, Callback { view, draw, slot: slot.min(SLOTS - 1) })
}

struct Callback {
    view: egui::Rect,
    draw: OverlayDraw,
    slot: usize,
}

impl CallbackTrait for Callback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(r) = resources.get_mut::<Resources>() else { return Vec::new() };
        let d = &self.draw;
        let rel = |p: egui::Pos2| [p.x - self.view.min.x, p.y - self.view.min.y];
        let [c0, c1, c2, c3] = d.corners.map(rel);
        let params: [f32; 16] = [
            c0[0], c0[1], c1[0], c1[1],
            c2[0], c2[1], c3[0], c3[1],
            self.view.width(), self.view.height(), d.opacity.clamp(0.0, 1.0), if r.srgb_target { 1.0 } else { 0.0 },
            d.range[0], d.range[1], d.map.width as f32, d.map.height as f32,
        ];
        let first = d.map.shared.as_ref().map_or(0, |(_, first)| *first);
        let mut bytes: Vec<u8> = params.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes.extend([first, 0, 0, 0].iter().flat_map(|v| v.to_le_bytes()));
        let slot = &r.slots[self.slot];
        queue.write_buffer(&slot.uniforms, 0, &bytes);
        let fresh = !matches!(&slot.current, Some((map, c, _, _)) if map.id == d.map.id && *c == d.colormap);
        let n = d.map.width as usize * d.map.height as usize;
        if fresh && n > 0 {
            let Some((_, lut)) = r.luts.iter().find(|(c, _)| *c == d.colormap) else { return Vec::new() };
            // burn's buffer when the map is on this device; else an upload.
            let upload = match &d.map.shared {
                Some(_) => None,
                None => {
                    let b = device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("auscope map"),
                        size: (n * 4) as u64,
                        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    let values: Vec<u8> = d.map.values.iter().take(n).flat_map(|v| v.to_le_bytes()).collect();
                    queue.write_buffer(&b, 0, &values);
                    Some(b)
                }
            };
            let map_binding = match (&d.map.shared, &upload) {
                (Some((shared, _)), _) => shared.binding(),
                (None, Some(b)) => b.as_entire_buffer_binding(),
                (None, None) => return Vec::new(),
            };
            let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("auscope overlay"),
                layout: &r.layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: slot.uniforms.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::Buffer(map_binding) },
                    wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(lut) },
                ],
            });
            r.slots[self.slot].current = Some((d.map.clone(), d.colormap, upload, bind));
        }
        Vec::new()
    }

    fn paint(&self, _info: egui::PaintCallbackInfo, pass: &mut wgpu::RenderPass<'static>, resources: &CallbackResources) {
        let Some(r) = resources.get::<Resources>() else { return };
        let Some((_, _, _, bind)) = &r.slots[self.slot].current else { return };
        pass.set_pipeline(&r.pipeline);
        pass.set_bind_group(0, bind, &[]);
        pass.draw(0..4, 0..1);
    }
}
