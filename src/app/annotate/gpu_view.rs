//! The image and its mask composited on the GPU by `shaders/composite.wgsl`, inside egui's
//! wgpu render pass. The frame's values go up once per image (f32, modality units), the mask
//! as u8 labels, then only the rectangles a stroke changed; window/level, opacity, the
//! label table's colours and the outline are uniforms. Used whenever egui runs on wgpu; otherwise the app draws CPU textures.

use std::sync::{Arc, Mutex};

use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, RenderState, wgpu};

use super::tools::PixelRect;
use crate::imaging::{Frame, Mask, Window};

/// Textures larger than this on a side fall back to the CPU path (wgpu's default limit).
pub const MAX_SIDE: u32 = 8192;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    center: f32,
    width: f32,
    invert: f32,
    value_scale: f32,
    opacity: f32,
    show_mask: f32,
    pixels_per_screen_pixel: f32,
    grey: f32,
    uv_min: [f32; 2],
    uv_max: [f32; 2],
    linear_output: f32,
    _pad: [f32; 3],
    /// Per label: RGB and strength (0 = hidden).
    colors: [[f32; 4]; 256],
}

/// Texture uploads waiting for the next painted frame. Shared by the UI and the callbacks, so
/// an upload survives frames that are laid out but never painted.
#[derive(Default)]
pub struct PendingUploads {
    /// A new image (key = document generation) with its mask.
    image: Option<(u64, Arc<Frame>, Mask)>,
    /// Changed mask rectangles (labels, rows packed), in order.
    parts: Vec<(PixelRect, Vec<u8>)>,
}

impl PendingUploads {
    pub fn new_image(&mut self, key: u64, frame: Arc<Frame>, mask: Mask) {
        self.image = Some((key, frame, mask));
        self.parts.clear();
    }

    /// Queues the labels of `rect` of `mask` for upload.
    pub fn mask_part(&mut self, mask: &Mask, rect: PixelRect) {
        if rect.is_empty() {
            return;
        }
        self.parts.push((rect, rect.labels_of(mask)));
    }
}

pub type SharedUploads = Arc<Mutex<PendingUploads>>;

/// What one frame needs drawn; built on the UI thread, applied in `prepare`.
pub struct CompositeCallback {
    /// Which image the textures must hold (the document's generation).
    pub image_key: u64,
    pub uploads: SharedUploads,
    pub window: Window,
    pub invert: bool,
    pub opacity: f32,
    pub show_mask: bool,
    /// Per label value: RGB (0–1) and strength (0 = hidden), from the label table.
    pub colors: Box<[[f32; 4]; 256]>,
    /// Screen points per image pixel.
    pub zoom: f32,
    /// The part of the image (texture coordinates, min and max) the callback's rectangle shows:
    /// egui clamps viewports to the screen, so the callback covers only the visible part.
    pub uv: [[f32; 2]; 2],
}

struct Textures {
    key: u64,
    mask: wgpu::Texture,
    bind_group: wgpu::BindGroup,
    grey: bool,
    value_scale: f32,
}

/// The pipeline and the current image's textures, kept in egui's callback resources.
pub struct CompositeResources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    params: wgpu::Buffer,
    linear_output: bool,
    textures: Option<Textures>,
}

impl CompositeResources {
    /// Builds the pipeline and stores it where the callbacks find it.
    pub fn install(render_state: &RenderState) {
        let device = &render_state.device;
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("composite.wgsl"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../../../shaders/composite.wgsl").into()),
        });
        let texture_entry = |binding, sample_type| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture { sample_type, view_dimension: wgpu::TextureViewDimension::D2, multisampled: false },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("composite"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
                    ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Uniform, has_dynamic_offset: false, min_binding_size: None },
                    count: None,
                },
                texture_entry(1, wgpu::TextureSampleType::Float { filterable: false }),
                texture_entry(2, wgpu::TextureSampleType::Uint),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("composite"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("composite"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState { module: &shader, entry_point: Some("vs_main"), compilation_options: Default::default(), buffers: &[] },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(render_state.target_format.into())],
            }),
            multiview_mask: None,
            cache: None,
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("composite params"),
            size: std::mem::size_of::<Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let resources =
            CompositeResources { pipeline, layout, params, linear_output: render_state.target_format.is_srgb(), textures: None };
        render_state.renderer.write().callback_resources.insert(resources);
    }

    fn upload_image(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, key: u64, frame: &Frame, mask: &Mask) {
        let size = wgpu::Extent3d { width: frame.width, height: frame.height, depth_or_array_layers: 1 };
        let grey = frame.channels == 1;
        // Grey frames keep their values (HU, raw counts) as f32; colour frames are 8-bit.
        let (format, bytes, bytes_per_pixel, value_scale) = if grey {
            (wgpu::TextureFormat::R32Float, bytemuck::cast_slice(&frame.data).to_vec(), 4, 1.0)
        } else {
            let channels = frame.channels as usize;
            let rgba: Vec<u8> = frame
                .data
                .chunks_exact(channels)
                .flat_map(|px| {
                    let at = |i: usize| px.get(i).copied().unwrap_or(px[0]).clamp(0.0, 255.0) as u8;
                    [at(0), at(1), at(2), 255]
                })
                .collect();
            (wgpu::TextureFormat::Rgba8Unorm, rgba, 4, 255.0)
        };
        let texture = |label, format, usage| {
            device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size,
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage,
                view_formats: &[],
            })
        };
        let usage = wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST;
        let image = texture("image values", format, usage);
        write(queue, &image, PixelRect { x0: 0, y0: 0, x1: frame.width, y1: frame.height }, &bytes, bytes_per_pixel);
        let mask_texture = texture("mask labels", wgpu::TextureFormat::R8Uint, usage);
        write(queue, &mask_texture, PixelRect::whole(mask), mask.labels(), 1);
        let view = |t: &wgpu::Texture| t.create_view(&wgpu::TextureViewDescriptor::default());
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("composite"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: self.params.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&view(&image)) },
                wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(&view(&mask_texture)) },
            ],
        });
        self.textures = Some(Textures { key, mask: mask_texture, bind_group, grey, value_scale });
    }
}

/// Copies `bytes` (rows of `rect`, tightly packed) into `rect` of `texture`.
fn write(queue: &wgpu::Queue, texture: &wgpu::Texture, rect: PixelRect, bytes: &[u8], bytes_per_pixel: u32) {
    if rect.is_empty() {
        return;
    }
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture,
            mip_level: 0,
            origin: wgpu::Origin3d { x: rect.x0, y: rect.y0, z: 0 },
            aspect: wgpu::TextureAspect::All,
        },
        bytes,
        wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(rect.width() * bytes_per_pixel), rows_per_image: Some(rect.height()) },
        wgpu::Extent3d { width: rect.width(), height: rect.height(), depth_or_array_layers: 1 },
    );
}

impl CallbackTrait for CompositeCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<CompositeResources>() else { return Vec::new() };
        if let Ok(mut pending) = self.uploads.lock() {
            if let Some((key, frame, mask)) = pending.image.take() {
                res.upload_image(device, queue, key, &frame, &mask);
            }
            if let Some(t) = res.textures.as_ref().filter(|t| t.key == self.image_key) {
                for (rect, labels) in pending.parts.drain(..) {
                    write(queue, &t.mask, rect, &labels, 1);
                }
            }
        }
        // Draw only the image this callback is about (never a previous one).
        if !res.textures.as_ref().is_some_and(|t| t.key == self.image_key) {
            return Vec::new();
        }
        let Some(textures) = &res.textures else { return Vec::new() };
        let params = Params {
            center: self.window.center as f32,
            width: self.window.width as f32,
            invert: f32::from(u8::from(self.invert)),
            value_scale: textures.value_scale,
            opacity: self.opacity,
            show_mask: f32::from(u8::from(self.show_mask)),
            pixels_per_screen_pixel: 1.0 / (self.zoom * screen.pixels_per_point).max(1e-3),
            grey: f32::from(u8::from(textures.grey)),
            uv_min: self.uv[0],
            uv_max: self.uv[1],
            linear_output: f32::from(u8::from(res.linear_output)),
            _pad: [0.0; 3],
            colors: *self.colors,
        };
        queue.write_buffer(&res.params, 0, bytemuck::bytes_of(&params));
        Vec::new()
    }

    fn paint(&self, _info: egui::PaintCallbackInfo, pass: &mut wgpu::RenderPass<'static>, resources: &CallbackResources) {
        let Some(res) = resources.get::<CompositeResources>() else { return };
        let Some(textures) = res.textures.as_ref().filter(|t| t.key == self.image_key) else { return };
        pass.set_pipeline(&res.pipeline);
        pass.set_bind_group(0, &textures.bind_group, &[]);
        pass.draw(0..6, 0..1);
    }
}
