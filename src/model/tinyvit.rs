//! TinyViT-5M, the image encoder of LiteMedSAM and De-LightSAM: MBConv stage, then windowed
//! attention stages, then SAM's neck. Parameter paths mirror the PyTorch names, except that
//! `layers.0` is `conv_stage` and `layers.1..3` are `stages.0..2` (different module types).

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::ops::PadMode;

use super::controller::{ControllerConfig, ModalityController};
use super::kernels::{contiguous, depthwise_conv3x3_tokens, gelu, softmax_last};
use super::layers::{Conv2dBn, Conv2dBnConfig, LayerNorm2d};

#[derive(Config, Debug)]
pub struct TinyVitConfig {
    /// Input side in pixels: 256 for LiteMedSAM, 1024 for MobileSAM/De-LightSAM.
    #[config(default = 256)]
    pub img_size: usize,
    #[config(default = "[64, 128, 160, 320]")]
    pub embed_dims: [usize; 4],
    #[config(default = "[2, 2, 6, 2]")]
    pub depths: [usize; 4],
    #[config(default = "[2, 4, 5, 10]")]
    pub num_heads: [usize; 4],
    #[config(default = "[7, 7, 14, 7]")]
    pub window_sizes: [usize; 4],
    #[config(default = 4)]
    pub mlp_ratio: usize,
    #[config(default = 4)]
    pub mbconv_expand_ratio: usize,
    #[config(default = 256)]
    pub out_channels: usize,
}

impl TinyVitConfig {
    /// The patch embedding keeps the resolution at 256² input (1×1 convs) and divides it by 4 at
    /// 1024² input (two 3×3 stride-2 convs), so the embedding is 64×64 either way.
    fn strided_patch_embed(&self) -> bool {
        self.img_size > 256
    }

    /// Side of the feature map entering stage `i` (0 = the MBConv stage).
    pub fn stage_resolution(&self, i: usize) -> usize {
        let base = if self.strided_patch_embed() { self.img_size / 4 } else { self.img_size };
        // The merge into the last stage keeps stride 1.
        base >> i.min(2)
    }

    pub fn embedding_size(&self) -> usize {
        self.stage_resolution(3)
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> TinyVit<B> {
        self.init_with_controller(None, device)
    }

    /// With `controller` = (config, modality slots), every attention block gets a modality
    /// controller (the DC-Encoder); without, this is plain TinyViT.
    pub fn init_with_controller<B: Backend>(
        &self,
        controller: Option<(&ControllerConfig, usize)>,
        device: &B::Device,
    ) -> TinyVit<B> {
        let d = self.embed_dims;
        let (k, s, p) = if self.strided_patch_embed() { (3, 2, 1) } else { (1, 1, 0) };
        let patch_embed = PatchEmbed {
            conv1: Conv2dBnConfig::new(3, d[0] / 2).with_kernel(k).with_stride(s).with_padding(p).init(device),
            conv2: Conv2dBnConfig::new(d[0] / 2, d[0]).with_kernel(k).with_stride(s).with_padding(p).init(device),
        };
        let conv_stage = ConvStage {
            blocks: (0..self.depths[0]).map(|_| MbConv::new(d[0], self.mbconv_expand_ratio, device)).collect(),
            downsample: PatchMerging::new(d[0], d[1], device),
        };
        let stages = (1..4)
            .map(|i| AttentionStage {
                blocks: (0..self.depths[i])
                    .map(|_| {
                        let mut block =
                            TinyVitBlock::new(d[i], self.num_heads[i], self.window_sizes[i], self.mlp_ratio, device);
                        block.controller = controller.map(|(c, slots)| c.init(slots, d[i], self.num_heads[i], device));
                        block
                    })
                    .collect(),
                downsample: (i < 3).then(|| PatchMerging::new(d[i], d[i + 1], device)),
            })
            .collect();
        let out = self.out_channels;
        let neck = Neck {
            conv1: Conv2dConfig::new([d[3], out], [1, 1]).with_bias(false).init(device),
            norm1: LayerNorm2d::new(out, device),
            conv2: Conv2dConfig::new([out, out], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device),
            norm2: LayerNorm2d::new(out, device),
        };
        TinyVit { patch_embed, conv_stage, stages, neck }
    }
}

#[derive(Module, Debug)]
pub struct TinyVit<B: Backend> {
    pub patch_embed: PatchEmbed<B>,
    pub conv_stage: ConvStage<B>,
    pub stages: Vec<AttentionStage<B>>,
    pub neck: Neck<B>,
}

impl<B: Backend> TinyVit<B> {
    /// Image (B, 3, S, S), normalised to [0, 1] → embedding (B, 256, 64, 64).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_modality(x, None)
    }

    /// As [`forward`](Self::forward), with modality `slot`'s controller switched in (a batch is
    /// one modality). `None`, or an encoder without controller, is plain TinyViT.
    pub fn forward_modality(&self, x: Tensor<B, 4>, slot: Option<usize>) -> Tensor<B, 4> {
        self.forward_unless(x, slot, &|| false).expect("never asked to stop")
    }

    /// As [`forward_modality`](Self::forward_modality), but gives up (`None`) as soon as `stop`
    /// says so; it is asked between blocks. For work done ahead that a user's request must not
    /// wait for (on a backend that runs ops as they come, as the CPU's does, a block is ~0.1 s).
    pub fn forward_unless(&self, x: Tensor<B, 4>, slot: Option<usize>, stop: &dyn Fn() -> bool) -> Option<Tensor<B, 4>> {
        let mut x = self.patch_embed.forward(x);
        for block in &self.conv_stage.blocks {
            if stop() {
                return None;
            }
            x = block.forward(x);
        }
        x = self.conv_stage.downsample.forward(x);
        for stage in &self.stages {
            x = stage.forward_unless(x, slot, stop)?;
        }
        if stop() {
            return None;
        }
        Some(self.neck.forward(x))
    }

    pub fn has_controller(&self) -> bool {
        self.stages.iter().flat_map(|s| &s.blocks).all(|b| b.controller.is_some())
    }

    /// Folds every BatchNorm into its convolution (inference only; training keeps them).
    pub fn fold_batch_norms(self) -> Self {
        let fold_merge = |m: PatchMerging<B>| PatchMerging { conv1: m.conv1.fold(), conv2: m.conv2.fold(), conv3: m.conv3.fold() };
        Self {
            patch_embed: PatchEmbed { conv1: self.patch_embed.conv1.fold(), conv2: self.patch_embed.conv2.fold() },
            conv_stage: ConvStage {
                blocks: self
                    .conv_stage
                    .blocks
                    .into_iter()
                    .map(|b| MbConv { conv1: b.conv1.fold(), conv2: b.conv2.fold(), conv3: b.conv3.fold() })
                    .collect(),
                downsample: fold_merge(self.conv_stage.downsample),
            },
            stages: self
                .stages
                .into_iter()
                .map(|s| AttentionStage {
                    blocks: s
                        .blocks
                        .into_iter()
                        .map(|b| TinyVitBlock { local_conv: b.local_conv.fold(), ..b })
                        .collect(),
                    downsample: s.downsample.map(fold_merge),
                })
                .collect(),
            neck: self.neck,
        }
    }
}

#[derive(Module, Debug)]
pub struct PatchEmbed<B: Backend> {
    pub conv1: Conv2dBn<B>,
    pub conv2: Conv2dBn<B>,
}

impl<B: Backend> PatchEmbed<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.conv2.forward(gelu(self.conv1.forward(x)))
    }
}

/// Inverted residual block: 1×1 expand, 3×3 depthwise, 1×1 project, residual, GELU.
#[derive(Module, Debug)]
pub struct MbConv<B: Backend> {
    pub conv1: Conv2dBn<B>,
    pub conv2: Conv2dBn<B>,
    pub conv3: Conv2dBn<B>,
}

impl<B: Backend> MbConv<B> {
    fn new(channels: usize, expand: usize, device: &B::Device) -> Self {
        let hidden = channels * expand;
        Self {
            conv1: Conv2dBnConfig::new(channels, hidden).init(device),
            conv2: Conv2dBnConfig::new(hidden, hidden).with_kernel(3).with_padding(1).with_groups(hidden).init(device),
            conv3: Conv2dBnConfig::new(hidden, channels).init(device),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = gelu(self.conv1.forward(x.clone()));
        let y = gelu(self.conv2.forward(y));
        gelu(self.conv3.forward(y).add(x))
    }
}

/// 1×1 conv, 3×3 depthwise (stride 2, or 1 into the 320-channel stage), 1×1 conv.
#[derive(Module, Debug)]
pub struct PatchMerging<B: Backend> {
    pub conv1: Conv2dBn<B>,
    pub conv2: Conv2dBn<B>,
    pub conv3: Conv2dBn<B>,
}

impl<B: Backend> PatchMerging<B> {
    fn new(dim: usize, out_dim: usize, device: &B::Device) -> Self {
        // As in TinyViT for SAM: the merge into the last stage (320/448/576 channels) keeps stride 1.
        let stride = if matches!(out_dim, 320 | 448 | 576) { 1 } else { 2 };
        Self {
            conv1: Conv2dBnConfig::new(dim, out_dim).init(device),
            conv2: Conv2dBnConfig::new(out_dim, out_dim)
                .with_kernel(3)
                .with_stride(stride)
                .with_padding(1)
                .with_groups(out_dim)
                .init(device),
            conv3: Conv2dBnConfig::new(out_dim, out_dim).init(device),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = gelu(self.conv1.forward(x));
        let x = gelu(self.conv2.forward(x));
        self.conv3.forward(x)
    }
}

#[derive(Module, Debug)]
pub struct ConvStage<B: Backend> {
    pub blocks: Vec<MbConv<B>>,
    pub downsample: PatchMerging<B>,
}

impl<B: Backend> ConvStage<B> {
    pub fn forward(&self, mut x: Tensor<B, 4>) -> Tensor<B, 4> {
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.downsample.forward(x)
    }
}

#[derive(Module, Debug)]
pub struct AttentionStage<B: Backend> {
    pub blocks: Vec<TinyVitBlock<B>>,
    pub downsample: Option<PatchMerging<B>>,
}

impl<B: Backend> AttentionStage<B> {
    /// NCHW in, NCHW out; the blocks work on (B, H·W, C) tokens.
    pub fn forward(&self, x: Tensor<B, 4>, slot: Option<usize>) -> Tensor<B, 4> {
        self.forward_unless(x, slot, &|| false).expect("never asked to stop")
    }

    /// `None` when `stop` says so before a block.
    pub fn forward_unless(&self, x: Tensor<B, 4>, slot: Option<usize>, stop: &dyn Fn() -> bool) -> Option<Tensor<B, 4>> {
        let [b, c, h, w] = x.dims();
        let mut tokens = contiguous(x.reshape([b, c, h * w]).swap_dims(1, 2));
        for block in &self.blocks {
            if stop() {
                return None;
            }
            tokens = block.forward(tokens, h, w, slot);
        }
        let x = contiguous(tokens.swap_dims(1, 2)).reshape([b, c, h, w]);
        Some(match &self.downsample {
            Some(merge) => merge.forward(x),
            None => x,
        })
    }
}

/// x + Attn(x) in windows, 3×3 depthwise conv, x + MLP(x); with a controller, the modality's
/// prefix tokens join the attention and its MLP runs beside the FFN.
#[derive(Module, Debug)]
pub struct TinyVitBlock<B: Backend> {
    pub attn: WindowAttention<B>,
    pub local_conv: Conv2dBn<B>,
    pub mlp: TinyVitMlp<B>,
    pub controller: Option<ModalityController<B>>,
    pub window_size: usize,
}

impl<B: Backend> TinyVitBlock<B> {
    fn new(dim: usize, heads: usize, window_size: usize, mlp_ratio: usize, device: &B::Device) -> Self {
        Self {
            attn: WindowAttention::new(dim, heads, window_size, device),
            local_conv: Conv2dBnConfig::new(dim, dim).with_kernel(3).with_padding(1).with_groups(dim).init(device),
            mlp: TinyVitMlp {
                norm: LayerNormConfig::new(dim).init(device),
                fc1: LinearConfig::new(dim, dim * mlp_ratio).init(device),
                fc2: LinearConfig::new(dim * mlp_ratio, dim).init(device),
            },
            controller: None,
            window_size,
        }
    }

    pub fn forward(&self, x: Tensor<B, 3>, h: usize, w: usize, slot: Option<usize>) -> Tensor<B, 3> {
        let [b, l, c] = x.dims();
        let ws = self.window_size;
        let prefix = self.controller.as_ref().zip(slot);
        let attended = if h == ws && w == ws {
            self.attn.forward(x.clone(), prefix)
        } else {
            let pad_b = (ws - h % ws) % ws;
            let pad_r = (ws - w % ws) % ws;
            let mut grid = x.clone().reshape([b, h, w, c]);
            if pad_b > 0 || pad_r > 0 {
                grid = grid.pad([(0, pad_b), (0, pad_r), (0, 0)], PadMode::Constant(0.0));
            }
            let (ph, pw) = (h + pad_b, w + pad_r);
            let (nh, nw) = (ph / ws, pw / ws);
            let windows: Tensor<B, 3> =
                contiguous(grid.reshape([b, nh, ws, nw, ws, c]).swap_dims(2, 3)).reshape([b * nh * nw, ws * ws, c]);
            let windows_out: Tensor<B, 6> = self.attn.forward(windows, prefix).reshape([b, nh, nw, ws, ws, c]);
            let out: Tensor<B, 4> = contiguous(windows_out.swap_dims(2, 3)).reshape([b, ph, pw, c]);
            let out = if pad_b > 0 || pad_r > 0 { contiguous(out.slice([0..b, 0..h, 0..w, 0..c])) } else { out };
            out.reshape([b, l, c])
        };
        let x = x.add(attended);
        let x = self.local_conv_tokens(x, h, w);
        let normed = self.mlp.norm.forward(x.clone());
        let x = x.add(self.mlp.ffn(normed.clone()));
        match prefix {
            // The controller MLP sees the same normalised tokens as the FFN it runs beside.
            Some((controller, slot)) => x.add(controller.mlp(slot, normed)),
            None => x,
        }
    }
}

impl<B: Backend> TinyVitBlock<B> {
    /// The 3×3 depthwise `local_conv` on token-major tokens (B, H·W, C): directly where a
    /// kernel for the backend exists and the BatchNorm is folded, else through NCHW.
    fn local_conv_tokens(&self, x: Tensor<B, 3>, h: usize, w: usize) -> Tensor<B, 3> {
        let conv = &self.local_conv;
        let x = match (&conv.bn, &conv.c.bias) {
            (None, Some(bias)) => match depthwise_conv3x3_tokens(x, (h, w), conv.c.weight.val(), bias.val()) {
                Ok(out) => return out,
                Err(x) => x,
            },
            _ => x,
        };
        let [b, l, c] = x.dims();
        let x = contiguous(x.swap_dims(1, 2)).reshape([b, c, h, w]);
        contiguous(conv.forward(x).reshape([b, c, l]).swap_dims(1, 2))
    }
}

#[derive(Module, Debug)]
pub struct TinyVitMlp<B: Backend> {
    pub norm: LayerNorm<B>,
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
}

impl<B: Backend> TinyVitMlp<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.ffn(self.norm.forward(x))
    }

    /// The MLP without its LayerNorm.
    pub fn ffn(&self, normed: Tensor<B, 3>) -> Tensor<B, 3> {
        self.fc2.forward(gelu(self.fc1.forward(normed)))
    }
}

/// Multi-head attention inside one window, with a learned bias per head for each |dy|, |dx|
/// offset. The qkv projection is laid out per head: [q_h, k_h, v_h] for h = 0..heads.
#[derive(Module, Debug)]
pub struct WindowAttention<B: Backend> {
    pub norm: LayerNorm<B>,
    pub qkv: Linear<B>,
    pub proj: Linear<B>,
    pub attention_biases: Param<Tensor<B, 2>>,
    /// For each (query, key) pair in the window, its offset's column in `attention_biases`.
    #[module(skip)]
    pub bias_index: Tensor<B, 1, Int>,
    pub num_heads: usize,
    pub key_dim: usize,
}

impl<B: Backend> WindowAttention<B> {
    fn new(dim: usize, heads: usize, window: usize, device: &B::Device) -> Self {
        let key_dim = dim / heads;
        let (offsets, index) = relative_offsets(window);
        Self {
            norm: LayerNormConfig::new(dim).init(device),
            qkv: LinearConfig::new(dim, 3 * key_dim * heads).init(device),
            proj: LinearConfig::new(key_dim * heads, dim).init(device),
            attention_biases: Param::from_tensor(Tensor::zeros([heads, offsets], device)),
            bias_index: Tensor::from_data(TensorData::new(index, [window.pow(4)]), device),
            num_heads: heads,
            key_dim,
        }
    }

    /// Tokens of windows (b, n, dim) → (b, n, dim); `prefix` adds a modality's controller tokens.
    pub fn forward(&self, x: Tensor<B, 3>, prefix: Option<(&ModalityController<B>, usize)>) -> Tensor<B, 3> {
        let [b, n, _] = x.dims();
        let (heads, kd) = (self.num_heads, self.key_dim);
        let scale = (kd as f64).powf(-0.5);
        let qkv = self.qkv.forward(self.norm.forward(x)).reshape([b, n, heads, 3 * kd]);
        let q = qkv.clone().narrow(3, 0, kd).swap_dims(1, 2);
        let k = qkv.clone().narrow(3, kd, kd).swap_dims(1, 2);
        let v = qkv.narrow(3, 2 * kd, kd).swap_dims(1, 2);
        let bias: Tensor<B, 2> = self.attention_biases.val().select(1, self.bias_index.clone());
        // Added as one shared row per window so the backend broadcasts it without a strided walk.
        let scores = q.clone().matmul(k.swap_dims(2, 3)).mul_scalar(scale).reshape([b, heads * n * n]);
        let scores = scores.add(bias.reshape([1, heads * n * n])).reshape([b, heads, n, n]);
        let mut out = softmax_last(scores).matmul(v);
        if let Some((controller, slot)) = prefix {
            out = out.add(controller.prefix_attention(slot, q, scale));
        }
        self.proj.forward(contiguous(out.swap_dims(1, 2)).reshape([b, n, heads * kd]))
    }
}

/// The number of distinct (|dy|, |dx|) offsets in a window, and for every (query, key) pair the
/// index of its offset, numbered in order of first appearance (as TinyViT numbers them).
fn relative_offsets(window: usize) -> (usize, Vec<i64>) {
    let points: Vec<(usize, usize)> = (0..window).flat_map(|y| (0..window).map(move |x| (y, x))).collect();
    let mut seen = std::collections::HashMap::new();
    let mut index = Vec::with_capacity(points.len() * points.len());
    for p1 in &points {
        for p2 in &points {
            let offset = (p1.0.abs_diff(p2.0), p1.1.abs_diff(p2.1));
            let next = seen.len() as i64;
            index.push(*seen.entry(offset).or_insert(next));
        }
    }
    (seen.len(), index)
}

#[derive(Module, Debug)]
pub struct Neck<B: Backend> {
    pub conv1: Conv2d<B>,
    pub norm1: LayerNorm2d<B>,
    pub conv2: Conv2d<B>,
    pub norm2: LayerNorm2d<B>,
}

impl<B: Backend> Neck<B> {
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.norm1.forward(self.conv1.forward(x));
        self.norm2.forward(self.conv2.forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_match_tinyvit_counts() {
        // A w×w window has w² distinct (|dy|, |dx|) offsets: 49 for 7, 196 for 14.
        assert_eq!(relative_offsets(7).0, 49);
        assert_eq!(relative_offsets(14).0, 196);
        let (_, index) = relative_offsets(2);
        // Points (0,0),(0,1),(1,0),(1,1): offsets (0,0)=0, (0,1)=1, (1,0)=2, (1,1)=3.
        assert_eq!(&index[0..4], &[0, 1, 2, 3]);
        assert_eq!(&index[4..8], &[1, 0, 3, 2]);
    }

    #[test]
    fn stage_resolutions_for_both_inputs() {
        let lite = TinyVitConfig::new();
        assert_eq!((0..4).map(|i| lite.stage_resolution(i)).collect::<Vec<_>>(), vec![256, 128, 64, 64]);
        let big = TinyVitConfig::new().with_img_size(1024);
        assert_eq!(big.embedding_size(), 64);
    }
}
