//! SAM's prompt encoder for points and boxes: random-Fourier positional encoding of coordinates
//! plus a learned embedding per prompt kind. Mask prompts are not used by this application.

use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::prelude::*;

use super::preprocess::Geometry;

/// A point prompt in model-input pixels (the 256² frame).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointPrompt {
    pub x: f32,
    pub y: f32,
    /// Foreground (true) or background (false).
    pub positive: bool,
}

/// Boxes and points in model-input pixels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prompts {
    /// x0, y0, x1, y1.
    pub bbox: Option<[f32; 4]>,
    pub points: Vec<PointPrompt>,
}

impl Prompts {
    pub fn is_empty(&self) -> bool {
        self.bbox.is_none() && self.points.is_empty()
    }

    /// Prompts given in original-image pixels → the same prompts in model-input pixels.
    pub fn to_input_space(&self, geometry: &Geometry) -> Prompts {
        let map = |x: f32, y: f32| geometry.to_input(f64::from(x), f64::from(y));
        Prompts {
            bbox: self.bbox.map(|[x0, y0, x1, y1]| {
                let ((a, b), (c, d)) = (map(x0, y0), map(x1, y1));
                [a, b, c, d]
            }),
            points: self
                .points
                .iter()
                .map(|p| {
                    let (x, y) = map(p.x, p.y);
                    PointPrompt { x, y, positive: p.positive }
                })
                .collect(),
        }
    }
}

#[derive(Module, Debug)]
pub struct PositionEmbeddingRandom<B: Backend> {
    /// (2, 128): coordinates in [-1, 1] → Fourier features.
    pub positional_encoding_gaussian_matrix: Param<Tensor<B, 2>>,
}

impl<B: Backend> PositionEmbeddingRandom<B> {
    /// Coordinates in [0, 1], shape (..., 2) → (..., 256) = [sin, cos].
    fn encode<const D: usize>(&self, coords: Tensor<B, D>) -> Tensor<B, D> {
        let coords = coords.mul_scalar(2.0).sub_scalar(1.0);
        let gaussian = self.positional_encoding_gaussian_matrix.val();
        let dims = coords.dims();
        let rows: usize = dims[..D - 1].iter().product();
        let projected = coords.reshape([rows, 2]).matmul(gaussian).mul_scalar(2.0 * std::f64::consts::PI);
        let features = Tensor::cat(vec![projected.clone().sin(), projected.cos()], 1);
        let mut out_shape = dims;
        out_shape[D - 1] = features.dims()[1];
        features.reshape(out_shape)
    }

    /// The encoding of every cell centre of a `size`×`size` grid, token-major as the decoder's
    /// transformer uses it: (1, size², 256), cell (y, x) at row y·size + x. It depends only on
    /// the weights, so callers that decode often compute it once.
    pub fn dense(&self, size: usize, device: &B::Device) -> Tensor<B, 3> {
        let mut coords = Vec::with_capacity(size * size * 2);
        for y in 0..size {
            for x in 0..size {
                coords.push((x as f32 + 0.5) / size as f32);
                coords.push((y as f32 + 0.5) / size as f32);
            }
        }
        let coords = Tensor::<B, 3>::from_data(TensorData::new(coords, [size, size, 2]), device);
        self.encode(coords).reshape([1, size * size, self.positional_encoding_gaussian_matrix.dims()[1] * 2])
    }

    /// Pixel coordinates (…, 2) in an image of `image_size`² → (…, 256).
    fn encode_pixels<const D: usize>(&self, coords: Tensor<B, D>, image_size: usize) -> Tensor<B, D> {
        self.encode(coords.div_scalar(image_size as f64))
    }
}

#[derive(Config, Debug)]
pub struct PromptEncoderConfig {
    #[config(default = 256)]
    pub embed_dim: usize,
    #[config(default = 64)]
    pub image_embedding_size: usize,
    #[config(default = 256)]
    pub input_image_size: usize,
}

impl PromptEncoderConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> PromptEncoder<B> {
        let embedding = || EmbeddingConfig::new(1, self.embed_dim).init(device);
        PromptEncoder {
            pe_layer: PositionEmbeddingRandom {
                positional_encoding_gaussian_matrix: Param::from_tensor(Tensor::random(
                    [2, self.embed_dim / 2],
                    burn::tensor::Distribution::Normal(0.0, 1.0),
                    device,
                )),
            },
            point_embeddings: (0..4).map(|_| embedding()).collect(),
            not_a_point_embed: embedding(),
            no_mask_embed: embedding(),
            image_embedding_size: self.image_embedding_size,
            input_image_size: self.input_image_size,
        }
    }
}

#[derive(Module, Debug)]
pub struct PromptEncoder<B: Backend> {
    pub pe_layer: PositionEmbeddingRandom<B>,
    /// Negative point, positive point, box top-left, box bottom-right.
    pub point_embeddings: Vec<Embedding<B>>,
    pub not_a_point_embed: Embedding<B>,
    pub no_mask_embed: Embedding<B>,
    pub image_embedding_size: usize,
    pub input_image_size: usize,
}

impl<B: Backend> PromptEncoder<B> {
    /// The positional encoding of the image embedding grid, token-major: (1, 64·64, 256).
    pub fn dense_pe(&self, device: &B::Device) -> Tensor<B, 3> {
        self.pe_layer.dense(self.image_embedding_size, device)
    }

    /// "No mask" dense embedding, (1, 256, 64, 64).
    pub fn dense_embedding(&self) -> Tensor<B, 4> {
        let s = self.image_embedding_size;
        let weight = self.no_mask_embed.weight.val();
        let dim = weight.dims()[1];
        weight.reshape([1, dim, 1, 1]).expand([1, dim, s, s])
    }

    /// Sparse embeddings (1, n, 256): points first (padded with a "not a point" when there is no
    /// box, as SAM does), then the two box corners.
    pub fn sparse_embedding(&self, prompts: &Prompts, device: &B::Device) -> Tensor<B, 3> {
        let mut parts = Vec::new();
        if !prompts.points.is_empty() {
            // (x, y, kind): kind None = padding.
            let mut points: Vec<(f32, f32, Option<bool>)> =
                prompts.points.iter().map(|p| (p.x + 0.5, p.y + 0.5, Some(p.positive))).collect();
            if prompts.bbox.is_none() {
                points.push((0.0, 0.0, None));
            }
            let coords: Vec<f32> = points.iter().flat_map(|p| [p.0, p.1]).collect();
            let coords = Tensor::<B, 3>::from_data(TensorData::new(coords, [1, points.len(), 2]), device);
            let encoded = self.pe_layer.encode_pixels(coords, self.input_image_size);
            for (i, (_, _, kind)) in points.iter().enumerate() {
                let row = encoded.clone().narrow(1, i, 1);
                let row = match kind {
                    None => row.zeros_like().add(self.embedding_row(&self.not_a_point_embed)),
                    Some(false) => row.add(self.embedding_row(&self.point_embeddings[0])),
                    Some(true) => row.add(self.embedding_row(&self.point_embeddings[1])),
                };
                parts.push(row);
            }
        }
        if let Some([x0, y0, x1, y1]) = prompts.bbox {
            let corners = vec![x0 + 0.5, y0 + 0.5, x1 + 0.5, y1 + 0.5];
            let corners = Tensor::<B, 3>::from_data(TensorData::new(corners, [1, 2, 2]), device);
            let encoded = self.pe_layer.encode_pixels(corners, self.input_image_size);
            parts.push(encoded.clone().narrow(1, 0, 1).add(self.embedding_row(&self.point_embeddings[2])));
            parts.push(encoded.narrow(1, 1, 1).add(self.embedding_row(&self.point_embeddings[3])));
        }
        if parts.is_empty() {
            // No prompt at all: a single "not a point" token rather than an empty sequence.
            parts.push(self.embedding_row(&self.not_a_point_embed));
        }
        Tensor::cat(parts, 1)
    }

    fn embedding_row(&self, embedding: &Embedding<B>) -> Tensor<B, 3> {
        let weight = embedding.weight.val();
        let dim = weight.dims()[1];
        weight.reshape([1, 1, dim])
    }
}
