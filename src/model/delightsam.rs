//! De-LightSAM: DC-Encoder (TinyViT + modality controller) → SP-Generator (self-made patch
//! prompt) → QM-Decoder (one query per modality). Automatic: no user prompt is needed, though a
//! user-edited patch grid can replace the generated one.

use burn::module::Param;
use burn::prelude::*;

use super::controller::ControllerConfig;
use super::litemedsam::LiteMedSam;
use super::modality::ModalityRegistry;
use super::params::{count, set_trainable, with_fresh_ids};
use super::prompt_encoder::PositionEmbeddingRandom;
use super::qm_decoder::{QmDecoder, QmDecoderConfig};
use super::sp_generator::{SpGenerator, SpGeneratorConfig};
use super::tinyvit::{TinyVit, TinyVitConfig};

#[derive(Config, Debug)]
pub struct DeLightSamConfig {
    #[config(default = "TinyVitConfig::new()")]
    pub image_encoder: TinyVitConfig,
    #[config(default = "ControllerConfig::new()")]
    pub controller: ControllerConfig,
    #[config(default = "SpGeneratorConfig::new()")]
    pub sp_generator: SpGeneratorConfig,
    #[config(default = "QmDecoderConfig::new()")]
    pub decoder: QmDecoderConfig,
    #[config(default = "ModalityRegistry::default()")]
    pub modalities: ModalityRegistry,
}

impl DeLightSamConfig {
    /// A model with random weights (see [`DeLightSam::from_litemedsam`] for the real start).
    pub fn init<B: Backend>(&self, device: &B::Device) -> DeLightSam<B> {
        let slots = self.modalities.slots;
        let dim = self.decoder.transformer_dim;
        DeLightSam {
            image_encoder: self.image_encoder.init_with_controller(Some((&self.controller, slots)), device),
            pe_layer: PositionEmbeddingRandom {
                positional_encoding_gaussian_matrix: Param::from_tensor(Tensor::random(
                    [2, dim / 2],
                    burn::tensor::Distribution::Normal(0.0, 1.0),
                    device,
                ))
                .set_require_grad(false),
            },
            sp_generator: self.sp_generator.init(device),
            decoder: self.decoder.init(slots, device),
        }
    }

    /// Side of the square model input.
    pub fn input_size(&self) -> usize {
        self.image_encoder.img_size
    }

    /// One image's embedding: (channels, side, side), (256, 64, 64) for every shipped size.
    pub fn embedding_shape(&self) -> [usize; 3] {
        let side = self.image_encoder.embedding_size();
        [self.image_encoder.out_channels, side, side]
    }

    /// Side of the decoder's square mask logits: the embedding upscaled ×4.
    pub fn mask_size(&self) -> usize {
        4 * self.image_encoder.embedding_size()
    }
}

/// LiteMedSAM's weights fit only TinyViT-5M at its input size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LiteMedSAM's weights are for TinyViT-5M at {expected}² input; this config asks for {size}² with dims {dims:?}")]
pub struct IncompatibleConfig {
    pub expected: usize,
    pub size: usize,
    pub dims: [usize; 4],
}

/// Which parameters a training step updates (MODEL.md, MDKD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainStage {
    /// Common distillation: the backbone (TinyViT without controller) learns from a general teacher.
    Common,
    /// Domain distillation: only the modality controllers learn from a medical teacher.
    Domain,
    /// The head: SP-Generator and QM-Decoder, on a frozen encoder (the fast recipe).
    Head,
    /// Everything but the fixed positional encoding.
    EndToEnd,
    /// A modality's own parameters: its controllers, query token and hypernetwork. The
    /// backbone, SP-Generator and shared decoder stay frozen, so other modalities are unchanged.
    Adapt,
}

#[derive(Module, Debug)]
pub struct DeLightSam<B: Backend> {
    /// The DC-Encoder: TinyViT whose attention blocks carry a modality controller.
    pub image_encoder: TinyVit<B>,
    /// Random-Fourier positional encoding of the embedding grid (fixed, from LiteMedSAM).
    pub pe_layer: PositionEmbeddingRandom<B>,
    pub sp_generator: SpGenerator<B>,
    pub decoder: QmDecoder<B>,
}

/// What the head produces for one embedding.
#[derive(Debug, Clone)]
pub struct HeadOutput<B: Backend> {
    /// (B, 1, 32, 32) patch logits from the SP-Generator.
    pub patch_logits: Tensor<B, 4>,
    /// (B, 1, 32, 32) the 0/1 grid that prompted the decoder (generated or given).
    pub grid: Tensor<B, 4>,
    /// (B, 1, 256, 256) mask logits over the model input.
    pub mask_logits: Tensor<B, 4>,
}

impl<B: Backend> DeLightSam<B> {
    /// Preprocessed images (B, 3, S, S) of one modality → embeddings (B, 256, 64, 64).
    pub fn encode(&self, images: Tensor<B, 4>, slot: usize) -> Tensor<B, 4> {
        self.image_encoder.forward_modality(images, Some(slot))
    }

    /// The encoder without controller: what common distillation trains.
    pub fn encode_common(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        self.image_encoder.forward_modality(images, None)
    }

    /// SP-Generator + QM-Decoder on embeddings. `grid` (B, 1, 32, 32) replaces the generated
    /// patch prompt when given (the user's edited grid).
    pub fn head(&self, embedding: Tensor<B, 4>, slot: usize, grid: Option<Tensor<B, 4>>) -> HeadOutput<B> {
        let patch_logits = self.sp_generator.patch_logits(embedding.clone());
        let grid = grid.unwrap_or_else(|| SpGenerator::grid_from_logits(patch_logits.clone()));
        let mask_logits = self.decode(embedding, grid.clone(), slot);
        HeadOutput { patch_logits, grid, mask_logits }
    }

    /// The QM-Decoder on an embedding prompted with `grid`.
    pub fn decode(&self, embedding: Tensor<B, 4>, grid: Tensor<B, 4>, slot: usize) -> Tensor<B, 4> {
        let image_pe = self.image_pe(embedding.dims()[2], &embedding.device());
        self.decode_with_pe(embedding, grid, slot, image_pe)
    }

    /// The positional encoding of a `size`² embedding grid, token-major (1, size², 256): the
    /// same for every decode, so a caller that decodes often keeps it for
    /// [`decode_with_pe`](Self::decode_with_pe).
    pub fn image_pe(&self, size: usize, device: &B::Device) -> Tensor<B, 3> {
        self.pe_layer.dense(size, device)
    }

    /// [`decode`](Self::decode) with the positional encoding from [`image_pe`](Self::image_pe).
    pub fn decode_with_pe(&self, embedding: Tensor<B, 4>, grid: Tensor<B, 4>, slot: usize, image_pe: Tensor<B, 3>) -> Tensor<B, 4> {
        let prompted = embedding.add(self.sp_generator.dense_prompt(grid));
        self.decoder.forward(prompted, image_pe, slot)
    }

    pub fn forward(&self, images: Tensor<B, 4>, slot: usize) -> HeadOutput<B> {
        self.head(self.encode(images, slot), slot, None)
    }

    /// The starting point before any training: LiteMedSAM's encoder, transformer, upscaling and
    /// positional encoding; every modality's query and hypernetwork from LiteMedSAM's
    /// single-mask token and MLP; controllers and SP-Generator fresh (adding exactly nothing).
    pub fn from_litemedsam(lite: LiteMedSam<B>, config: &DeLightSamConfig, device: &B::Device) -> Result<Self, IncompatibleConfig> {
        let lite_encoder = TinyVitConfig::new();
        if config.image_encoder.img_size != lite_encoder.img_size
            || config.image_encoder.embed_dims != lite_encoder.embed_dims
            || config.image_encoder.depths != lite_encoder.depths
        {
            return Err(IncompatibleConfig {
                expected: lite_encoder.img_size,
                size: config.image_encoder.img_size,
                dims: config.image_encoder.embed_dims,
            });
        }
        let fresh = config.init::<B>(device);
        let slots = config.modalities.slots;

        let mut image_encoder = lite.image_encoder;
        for (stage, fresh_stage) in image_encoder.stages.iter_mut().zip(fresh.image_encoder.stages) {
            for (block, fresh_block) in stage.blocks.iter_mut().zip(fresh_stage.blocks) {
                block.controller = fresh_block.controller;
            }
        }

        let lite_decoder = lite.mask_decoder;
        let token = lite_decoder.mask_tokens.weight.val().narrow(0, 0, 1);
        let mut modality_tokens = fresh.decoder.modality_tokens;
        modality_tokens.weight = Param::from_tensor(token.detach().repeat_dim(0, slots));
        let hypernet = &lite_decoder.output_hypernetworks_mlps[0];
        let decoder = QmDecoder {
            transformer: lite_decoder.transformer,
            modality_tokens,
            output_upscaling: lite_decoder.output_upscaling,
            output_hypernetworks_mlps: (0..slots).map(|_| with_fresh_ids(hypernet.clone())).collect(),
        };
        let pe_layer = set_trainable(lite.prompt_encoder.pe_layer, false);
        Ok(Self { image_encoder, pe_layer, sp_generator: fresh.sp_generator, decoder })
    }

    /// For inference: BatchNorms folded into their convolutions.
    pub fn for_inference(self) -> Self {
        Self { image_encoder: self.image_encoder.fold_batch_norms(), ..self }
    }

    /// Freezes everything `stage` does not train (on an autodiff backend, frozen parameters get
    /// no gradient). The positional encoding is never trained.
    pub fn for_stage(self, stage: TrainStage) -> Self {
        let train_backbone = matches!(stage, TrainStage::Common | TrainStage::EndToEnd);
        let train_controller = matches!(stage, TrainStage::Domain | TrainStage::EndToEnd | TrainStage::Adapt);
        let train_head = matches!(stage, TrainStage::Head | TrainStage::EndToEnd);
        let mut encoder = self.image_encoder;
        let controllers: Vec<_> =
            encoder.stages.iter_mut().flat_map(|s| s.blocks.iter_mut()).map(|b| b.controller.take()).collect();
        let mut encoder = set_trainable(encoder, train_backbone);
        for (block, controller) in encoder.stages.iter_mut().flat_map(|s| s.blocks.iter_mut()).zip(controllers) {
            block.controller = controller.map(|c| set_trainable(c, train_controller));
        }
        let mut decoder = set_trainable(self.decoder, train_head);
        if stage == TrainStage::Adapt {
            // Per slot: only the rows and networks of the batch's modality get a gradient.
            decoder.modality_tokens = set_trainable(decoder.modality_tokens, true);
            decoder.output_hypernetworks_mlps =
                decoder.output_hypernetworks_mlps.into_iter().map(|m| set_trainable(m, true)).collect();
        }
        Self {
            image_encoder: encoder,
            pe_layer: set_trainable(self.pe_layer, false),
            sp_generator: set_trainable(self.sp_generator, train_head),
            decoder,
        }
    }

    /// Parameter counts per part, in the paper's terms.
    pub fn parameter_counts(&self) -> ParameterCounts {
        let controller: usize =
            self.image_encoder.stages.iter().flat_map(|s| &s.blocks).filter_map(|b| b.controller.as_ref()).map(count).sum();
        let decoder = count(&self.decoder);
        let hypernets: usize = self.decoder.output_hypernetworks_mlps.iter().map(count).sum();
        let tokens = count(&self.decoder.modality_tokens);
        ParameterCounts {
            backbone: count(&self.image_encoder) - controller,
            controller,
            sp_generator: count(&self.sp_generator),
            decoder_shared: decoder - hypernets - tokens,
            decoder_per_modality: hypernets + tokens,
            positional_encoding: count(&self.pe_layer),
            slots: self.decoder.slots(),
        }
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ParameterCounts {
    /// TinyViT-5M with its neck.
    pub backbone: usize,
    /// Modality controllers, all slots.
    pub controller: usize,
    pub sp_generator: usize,
    /// Two-way transformer and upscaling.
    pub decoder_shared: usize,
    /// Query tokens and hypernetwork MLPs, all slots.
    pub decoder_per_modality: usize,
    /// Fixed (not trained).
    pub positional_encoding: usize,
    pub slots: usize,
}

impl ParameterCounts {
    pub fn dc_encoder(&self) -> usize {
        self.backbone + self.controller
    }

    pub fn qm_decoder(&self) -> usize {
        self.decoder_shared + self.decoder_per_modality
    }

    pub fn total(&self) -> usize {
        self.dc_encoder() + self.sp_generator + self.qm_decoder() + self.positional_encoding
    }

    /// What one modality uses: the backbone and shared decoder plus its own slot's share.
    pub fn per_modality_model(&self) -> usize {
        let per_slot = (self.controller + self.decoder_per_modality) / self.slots.max(1);
        self.backbone + self.sp_generator + self.decoder_shared + self.positional_encoding + per_slot
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::module::ModuleVisitor;
    use burn::module::Param;
    use burn::tensor::Distribution;

    use super::*;
    use crate::model::backend::Cpu;

    /// A small input keeps these tests quick; every part is the real one.
    fn small_config() -> DeLightSamConfig {
        DeLightSamConfig::new().with_image_encoder(TinyVitConfig::new().with_img_size(64))
    }

    fn images<B: Backend>(batch: usize, device: &B::Device) -> Tensor<B, 4> {
        Tensor::random([batch, 3, 64, 64], Distribution::Uniform(0.0, 1.0), device)
    }

    #[test]
    fn shape_contracts() {
        let device = Default::default();
        let model = small_config().init::<Cpu>(&device);
        let embedding = model.encode(images(2, &device), 0);
        assert_eq!(embedding.dims(), [2, 256, 16, 16]);
        let out = model.head(embedding, 5, None);
        assert_eq!(out.patch_logits.dims(), [2, 1, 8, 8]);
        assert_eq!(out.grid.dims(), [2, 1, 8, 8]);
        assert_eq!(out.mask_logits.dims(), [2, 1, 64, 64]);
    }

    #[test]
    fn zero_controller_adds_nothing() {
        let device = Default::default();
        let model = small_config().init::<Cpu>(&device);
        let x = images(1, &device);
        let plain = model.encode_common(x.clone());
        for slot in [0, 7, 11] {
            let with_controller = model.encode(x.clone(), slot);
            assert_eq!(plain.clone().into_data(), with_controller.into_data(), "slot {slot}");
        }
        // A trained (non-zero) controller does change the embedding, for its own slot only.
        let mut moved = model.clone();
        let block = &mut moved.image_encoder.stages[0].blocks[0];
        let controller = block.controller.as_mut().unwrap();
        controller.prefix_gate = Param::from_tensor(controller.prefix_gate.val().add_scalar(1.0));
        let changed = moved.encode(x.clone(), 3).sub(plain.clone()).abs().max().into_scalar();
        assert!(changed > 1e-4, "gate 1 must change the embedding ({changed})");
    }

    #[test]
    fn one_modality_does_not_depend_on_another() {
        let device = Default::default();
        let model = small_config().init::<Cpu>(&device);
        let embedding = model.encode(images(1, &device), 0);
        let before_0 = model.head(embedding.clone(), 0, None).mask_logits;
        let before_2 = model.head(embedding.clone(), 2, None).mask_logits;

        let mut other = model.clone();
        let tokens = other.decoder.modality_tokens.weight.val();
        let mut changed_tokens = tokens.clone().narrow(0, 2, 1).add_scalar(0.5);
        changed_tokens = Tensor::cat(vec![tokens.clone().narrow(0, 0, 2), changed_tokens, tokens.narrow(0, 3, 9)], 0);
        other.decoder.modality_tokens.weight = Param::from_tensor(changed_tokens);
        other.decoder.output_hypernetworks_mlps[2] = crate::model::layers::SamMlp::new(256, 256, 32, 3, &device);

        let after_0 = other.head(embedding.clone(), 0, None).mask_logits;
        let after_2 = other.head(embedding, 2, None).mask_logits;
        assert_eq!(before_0.into_data(), after_0.into_data());
        assert!(before_2.sub(after_2).abs().max().into_scalar() > 1e-4);
    }

    #[test]
    fn an_edited_grid_replaces_the_generated_one() {
        let device = Default::default();
        let mut model = small_config().init::<Cpu>(&device);
        // Make the dense prompt matter (a fresh one is exactly zero).
        model.sp_generator.prompt_norm.weight = Param::from_tensor(Tensor::ones([256], &device));
        let embedding = model.encode(images(1, &device), 1);
        let all_on = Tensor::<Cpu, 4>::ones([1, 1, 8, 8], &device);
        let all_off = Tensor::<Cpu, 4>::zeros([1, 1, 8, 8], &device);
        let on = model.head(embedding.clone(), 1, Some(all_on.clone()));
        assert_eq!(on.grid.into_data(), all_on.into_data());
        let off = model.head(embedding, 1, Some(all_off)).mask_logits;
        assert!(on.mask_logits.sub(off).abs().max().into_scalar() > 1e-4);
    }

    /// Which parameters received a gradient, by part: (backbone, controller, head) each as
    /// (with gradient, without).
    fn gradient_reach(stage: TrainStage) -> [(usize, usize); 3] {
        type Ad = Autodiff<Cpu>;
        struct Reach<'a> {
            grads: &'a <Ad as burn::tensor::backend::AutodiffBackend>::Gradients,
            path: crate::model::params::VisitPath,
            with: usize,
            without: usize,
        }
        impl ModuleVisitor<Ad> for Reach<'_> {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.path.enter(name);
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.path.exit();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Ad, D>>) {
                if self.path.in_buffer() {
                    return;
                }
                if param.val().grad(self.grads).is_some() { self.with += 1 } else { self.without += 1 }
            }
        }
        let device = Default::default();
        let model = small_config().init::<Ad>(&device).for_stage(stage);
        let x = images::<Ad>(2, &device);
        let target = Tensor::<Ad, 4>::zeros([2, 1, 64, 64], &device);
        let loss = match stage {
            TrainStage::Common => model.encode_common(x).powf_scalar(2.0).mean(),
            TrainStage::Domain => model.encode(x, 4).powf_scalar(2.0).mean(),
            TrainStage::Head | TrainStage::EndToEnd | TrainStage::Adapt => {
                let out = model.forward(x, 4);
                out.mask_logits.sub(target).powf_scalar(2.0).mean().add(out.patch_logits.powf_scalar(2.0).mean())
            }
        };
        let grads = loss.backward();
        let reach = |visit: &dyn Fn(&mut Reach)| {
            let mut r = Reach { grads: &grads, path: Default::default(), with: 0, without: 0 };
            visit(&mut r);
            (r.with, r.without)
        };
        let mut backbone = model.image_encoder.clone();
        let controllers: Vec<_> =
            backbone.stages.iter_mut().flat_map(|s| s.blocks.iter_mut()).filter_map(|b| b.controller.take()).collect();
        [
            reach(&|r| backbone.visit(r)),
            reach(&|r| controllers.iter().for_each(|c| c.visit(r))),
            reach(&|r| {
                model.sp_generator.visit(r);
                model.decoder.visit(r);
            }),
        ]
    }

    #[test]
    fn a_frozen_backbone_keeps_its_batchnorm_statistics() {
        use burn::module::AutodiffModule;
        type Ad = Autodiff<Cpu>;
        let device = Default::default();
        for stage in [TrainStage::Domain, TrainStage::Adapt] {
            let model = small_config().init::<Ad>(&device).for_stage(stage);
            let x = images::<Ad>(2, &device);
            let training = model.encode(x.clone(), 1).inner();
            let inference = model.valid().encode(x.inner(), 1);
            let diff = training.sub(inference).abs().max().into_scalar();
            assert!(diff < 1e-5, "{stage:?} must not use batch statistics in the frozen backbone ({diff})");
        }
    }

    #[test]
    fn each_stage_trains_exactly_its_parameters() {
        // The decoder's query/hypernetwork of other slots never see a gradient, and the patch
        // generator is reached through the patch loss only.
        let [backbone, controller, head] = gradient_reach(TrainStage::Common);
        assert!(backbone.0 > 0 && backbone.1 == 0, "common: backbone {backbone:?}");
        assert_eq!(controller.0, 0, "common: controller {controller:?}");
        assert_eq!(head.0, 0, "common: head {head:?}");

        let [backbone, controller, head] = gradient_reach(TrainStage::Domain);
        assert_eq!(backbone.0, 0, "domain: backbone {backbone:?}");
        assert!(controller.0 > 0 && controller.1 == 0, "domain: controller {controller:?}");
        assert_eq!(head.0, 0, "domain: head {head:?}");

        let [backbone, controller, head] = gradient_reach(TrainStage::Head);
        assert_eq!(backbone.0, 0, "head: backbone {backbone:?}");
        assert_eq!(controller.0, 0, "head: controller {controller:?}");
        // Slot 4's token and hypernetwork layers are reached; the other 11 slots' 3 layers × 2 are not.
        assert!(head.0 > 0, "head: {head:?}");
        assert_eq!(head.1, 11 * 6, "head: only slot 4's hypernetwork is reached: {head:?}");

        let [backbone, controller, head] = gradient_reach(TrainStage::EndToEnd);
        assert!(backbone.0 > 0 && backbone.1 == 0, "end-to-end: backbone {backbone:?}");
        assert!(controller.0 > 0, "end-to-end: controller {controller:?}");
        assert_eq!(head.1, 11 * 6, "end-to-end: head {head:?}");

        let [backbone, controller, head] = gradient_reach(TrainStage::Adapt);
        assert_eq!(backbone.0, 0, "adapt: backbone {backbone:?}");
        assert!(controller.0 > 0 && controller.1 == 0, "adapt: controller {controller:?}");
        assert_eq!(head.0, 1 + 6, "adapt: slot 4's query tokens and its hypernetwork's 3 layers only: {head:?}");
    }

    #[test]
    fn adapting_one_modality_leaves_the_others_exactly_as_they_were() {
        use burn::module::AutodiffModule;
        use burn::optim::{AdamConfig, GradientsParams, Optimizer};
        type Ad = Autodiff<Cpu>;
        let device = Default::default();
        let model = small_config().init::<Ad>(&device).for_stage(TrainStage::Adapt);
        let x = images::<Ad>(2, &device);
        let before = |m: &DeLightSam<Ad>, slot| m.valid().forward(x.clone().inner(), slot).mask_logits;
        let (before_2, before_4) = (before(&model, 2), before(&model, 4));
        let mut optimizer = AdamConfig::new().init::<Ad, DeLightSam<Ad>>();
        let mut model = model;
        for _ in 0..2 {
            let out = model.forward(x.clone(), 4);
            let loss = out.mask_logits.sub_scalar(1.0).powf_scalar(2.0).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(1e-2, model, grads);
        }
        assert_eq!(before(&model, 2).into_data(), before_2.into_data(), "slot 2 must not change");
        let moved = before(&model, 4).sub(before_4).abs().max().into_scalar();
        assert!(moved > 1e-4, "slot 4 must learn ({moved})");
    }
}
