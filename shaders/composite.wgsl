// Image + mask compositing for the annotation view. The image texture holds the frame's values
// in modality units (one channel, f32) or raw 8-bit colour; window/level is applied here, so a
// window change costs one uniform write, not a re-upload. The mask (one u8 label per pixel) is
// filled with each label's colour at `opacity` times the label's strength and outlined, about
// 1.5 screen pixels wide at any zoom; a hidden label (strength 0) counts as background.

struct Params {
    // Window centre and width, in the texture's units.
    center: f32,
    width: f32,
    // 1.0 for MONOCHROME1 (inverted display), else 0.0.
    invert: f32,
    // Multiplies sampled values: 255 for 8-bit colour textures, 1 for value textures.
    value_scale: f32,
    opacity: f32,
    show_mask: f32,
    // Mask pixels per screen pixel (for the outline width).
    pixels_per_screen_pixel: f32,
    // 1.0 when the texture has one channel (grey), else 0.0.
    grey: f32,
    // The visible part of the image (texture coordinates) that the viewport shows.
    uv_min: vec2<f32>,
    uv_max: vec2<f32>,
    // 1.0 when the target is an sRGB format (it expects linear values), else 0.0.
    linear_output: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
    // Per label value: RGB and strength (0 = hidden); the label table's (app/annotate/labels.rs).
    colors: array<vec4<f32>, 256>,
};

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var image: texture_2d<f32>;
@group(0) @binding(2) var mask: texture_2d<u32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

// One quad over the callback's viewport (the visible part of the image), as two triangles.
@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0),
        vec2<f32>(0.0, 1.0), vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0),
    );
    let corner = corners[index];
    var out: VertexOut;
    out.position = vec4<f32>(corner.x * 2.0 - 1.0, 1.0 - corner.y * 2.0, 0.0, 1.0);
    out.uv = mix(params.uv_min, params.uv_max, corner);
    return out;
}

// The visible label at p: hidden labels read as background.
fn label_at(p: vec2<f32>, size: vec2<i32>) -> u32 {
    let q = clamp(vec2<i32>(floor(p)), vec2<i32>(0, 0), size - vec2<i32>(1, 1));
    let label = min(textureLoad(mask, q, 0).r, 255u);
    return select(0u, label, params.colors[label].a > 0.0);
}

fn label_color(label: u32) -> vec3<f32> {
    return params.colors[label].rgb;
}

fn windowed(v: f32) -> f32 {
    let low = params.center - 0.5 * params.width;
    let t = clamp((v - low) / max(params.width, 1e-6), 0.0, 1.0);
    return mix(t, 1.0 - t, params.invert);
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let size = vec2<i32>(textureDimensions(image));
    let p = in.uv * vec2<f32>(size);
    let texel = clamp(vec2<i32>(floor(p)), vec2<i32>(0, 0), size - vec2<i32>(1, 1));
    let raw = textureLoad(image, texel, 0) * params.value_scale;
    var rgb: vec3<f32>;
    if (params.grey > 0.5) {
        rgb = vec3<f32>(windowed(raw.r));
    } else {
        rgb = vec3<f32>(windowed(raw.r), windowed(raw.g), windowed(raw.b));
    }
    if (params.show_mask > 0.5) {
        let here = label_at(p, size);
        let d = max(params.pixels_per_screen_pixel * 1.5, 0.0);
        let right = label_at(p + vec2<f32>(d, 0.0), size);
        let left = label_at(p - vec2<f32>(d, 0.0), size);
        let down = label_at(p + vec2<f32>(0.0, d), size);
        let up = label_at(p - vec2<f32>(0.0, d), size);
        let edge = here != right || here != left || here != down || here != up;
        if (here != 0u) {
            rgb = mix(rgb, label_color(here), params.opacity * params.colors[here].a);
        }
        if (edge) {
            // The outline takes the colour of the labelled side.
            let outline = max(max(here, right), max(max(left, down), up));
            rgb = mix(rgb, label_color(select(outline, here, here != 0u)), 0.9);
        }
    }
    // egui paints in gamma space on a plain target; an sRGB target wants linear values.
    if (params.linear_output > 0.5) {
        rgb = pow(rgb, vec3<f32>(2.2));
    }
    return vec4<f32>(rgb, 1.0);
}
