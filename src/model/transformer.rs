//! SAM's two-way transformer: prompt tokens and image tokens attend to each other.

use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::kernels::{contiguous, softmax_last};

/// Multi-head attention with an optional downscaled internal dimension.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub out_proj: Linear<B>,
    pub num_heads: usize,
}

impl<B: Backend> Attention<B> {
    pub fn new(dim: usize, heads: usize, downsample: usize, device: &B::Device) -> Self {
        let internal = dim / downsample;
        Self {
            q_proj: LinearConfig::new(dim, internal).init(device),
            k_proj: LinearConfig::new(dim, internal).init(device),
            v_proj: LinearConfig::new(dim, internal).init(device),
            out_proj: LinearConfig::new(internal, dim).init(device),
            num_heads: heads,
        }
    }

    fn split_heads(&self, x: Tensor<B, 3>) -> Tensor<B, 4> {
        let [b, n, c] = x.dims();
        x.reshape([b, n, self.num_heads, c / self.num_heads]).swap_dims(1, 2)
    }

    pub fn forward(&self, q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 3>) -> Tensor<B, 3> {
        let q = self.split_heads(self.q_proj.forward(q));
        let k = self.split_heads(self.k_proj.forward(k));
        let v = self.split_heads(self.v_proj.forward(v));
        let [b, h, n, c] = q.dims();
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((c as f64).sqrt());
        let out = contiguous(softmax_last(scores).matmul(v).swap_dims(1, 2)).reshape([b, n, h * c]);
        self.out_proj.forward(out)
    }
}

#[derive(Module, Debug)]
pub struct MlpBlock<B: Backend> {
    pub lin1: Linear<B>,
    pub lin2: Linear<B>,
}

impl<B: Backend> MlpBlock<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.lin2.forward(relu(self.lin1.forward(x)))
    }
}

/// Self-attention of the tokens, tokens → image, MLP, image → tokens.
#[derive(Module, Debug)]
pub struct TwoWayAttentionBlock<B: Backend> {
    pub self_attn: Attention<B>,
    pub norm1: LayerNorm<B>,
    pub cross_attn_token_to_image: Attention<B>,
    pub norm2: LayerNorm<B>,
    pub mlp: MlpBlock<B>,
    pub norm3: LayerNorm<B>,
    pub norm4: LayerNorm<B>,
    pub cross_attn_image_to_token: Attention<B>,
    pub skip_first_layer_pe: bool,
}

impl<B: Backend> TwoWayAttentionBlock<B> {
    pub fn forward(
        &self,
        queries: Tensor<B, 3>,
        keys: Tensor<B, 3>,
        query_pe: Tensor<B, 3>,
        key_pe: Tensor<B, 3>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let queries = if self.skip_first_layer_pe {
            self.self_attn.forward(queries.clone(), queries.clone(), queries)
        } else {
            let q = queries.clone().add(query_pe.clone());
            queries.clone().add(self.self_attn.forward(q.clone(), q, queries))
        };
        let queries = self.norm1.forward(queries);

        let q = queries.clone().add(query_pe.clone());
        let k = keys.clone().add(key_pe.clone());
        let queries = queries.add(self.cross_attn_token_to_image.forward(q, k, keys.clone()));
        let queries = self.norm2.forward(queries);

        let queries = queries.clone().add(self.mlp.forward(queries));
        let queries = self.norm3.forward(queries);

        let q = queries.clone().add(query_pe);
        let k = keys.clone().add(key_pe);
        let keys = keys.add(self.cross_attn_image_to_token.forward(k, q, queries.clone()));
        let keys = self.norm4.forward(keys);
        (queries, keys)
    }
}

#[derive(Config, Debug)]
pub struct TwoWayTransformerConfig {
    #[config(default = 2)]
    pub depth: usize,
    #[config(default = 256)]
    pub embedding_dim: usize,
    #[config(default = 8)]
    pub num_heads: usize,
    #[config(default = 2048)]
    pub mlp_dim: usize,
    #[config(default = 2)]
    pub attention_downsample_rate: usize,
}

impl TwoWayTransformerConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> TwoWayTransformer<B> {
        let (dim, heads, down) = (self.embedding_dim, self.num_heads, self.attention_downsample_rate);
        let norm = || LayerNormConfig::new(dim).init(device);
        let layers = (0..self.depth)
            .map(|i| TwoWayAttentionBlock {
                self_attn: Attention::new(dim, heads, 1, device),
                norm1: norm(),
                cross_attn_token_to_image: Attention::new(dim, heads, down, device),
                norm2: norm(),
                mlp: MlpBlock {
                    lin1: LinearConfig::new(dim, self.mlp_dim).init(device),
                    lin2: LinearConfig::new(self.mlp_dim, dim).init(device),
                },
                norm3: norm(),
                norm4: norm(),
                cross_attn_image_to_token: Attention::new(dim, heads, down, device),
                skip_first_layer_pe: i == 0,
            })
            .collect();
        TwoWayTransformer {
            layers,
            final_attn_token_to_image: Attention::new(dim, heads, down, device),
            norm_final_attn: norm(),
        }
    }
}

#[derive(Module, Debug)]
pub struct TwoWayTransformer<B: Backend> {
    pub layers: Vec<TwoWayAttentionBlock<B>>,
    pub final_attn_token_to_image: Attention<B>,
    pub norm_final_attn: LayerNorm<B>,
}

impl<B: Backend> TwoWayTransformer<B> {
    /// Image (B, C, H, W) with its positional encoding, token-major (1, H·W, C), tokens (B, N, C) →
    /// (tokens (B, N, C), image tokens (B, H·W, C)).
    pub fn forward(
        &self,
        image: Tensor<B, 4>,
        image_pe: Tensor<B, 3>,
        tokens: Tensor<B, 3>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let [b, c, h, w] = image.dims();
        let keys_pe = if b == 1 { image_pe } else { image_pe.expand([b, h * w, c]) };
        // Token-major once here, so the layers' adds and norms see row-major tensors.
        let mut keys = contiguous(image.reshape([b, c, h * w]).swap_dims(1, 2));
        let mut queries = tokens.clone();
        for layer in &self.layers {
            (queries, keys) = layer.forward(queries, keys, tokens.clone(), keys_pe.clone());
        }
        let q = queries.clone().add(tokens);
        let k = keys.clone().add(keys_pe);
        let queries = queries.add(self.final_attn_token_to_image.forward(q, k, keys.clone()));
        (self.norm_final_attn.forward(queries), keys)
    }
}
