//! De-LightSAM built on the real LiteMedSAM weights: the zero controller changes nothing, the
//! record keeps weights and modalities, and the engine segments automatically at image size.

mod common;

use burn::module::Param;
use burn::prelude::*;
use delightsam::engine::AutoSegmenter;
use delightsam::imaging::{ImageSource, Mask};
use delightsam::model::backend::Cpu;
use delightsam::model::tinyvit::TinyVitConfig;
use delightsam::model::weights::{self, Provenance};
use delightsam::model::{DeLightSam, DeLightSamConfig, preprocess};

use common::{active_delightsam, fixture};

fn lite_model() -> delightsam::model::LiteMedSam<Cpu> {
    weights::load::<Cpu>(&weights::default_record_path(), &Default::default()).expect("shipped LiteMedSAM record")
}

#[test]
fn dc_encoder_with_zero_controller_equals_litemedsam_encoder() {
    let device = Default::default();
    let lite = lite_model().for_inference();
    let frame = ImageSource::open(fixture("raster/colin27_z090.png")).unwrap().frame(0).unwrap();
    let input = preprocess::prepare(&frame, 256);
    let x = Tensor::<Cpu, 4>::from_data(TensorData::new(input.data, [1, 3, 256, 256]), &device);
    let expected = lite.encode(x.clone()).into_data();

    let model = DeLightSam::from_litemedsam(lite_model(), &DeLightSamConfig::new(), &device).unwrap().for_inference();
    for slot in [0, 7] {
        assert_eq!(model.encode(x.clone(), slot).into_data(), expected, "slot {slot}");
    }
}

#[test]
fn a_1024_config_refuses_litemedsam_weights() {
    let config = DeLightSamConfig::new().with_image_encoder(TinyVitConfig::new().with_img_size(1024));
    let err = DeLightSam::from_litemedsam(lite_model(), &config, &Default::default()).unwrap_err().to_string();
    assert!(err.contains("1024"), "{err}");
}

/// A model whose controllers, dense prompt and slots all matter: what training would produce.
#[test]
fn record_round_trip_keeps_weights_and_modalities() {
    let device = Default::default();
    let mut config = DeLightSamConfig::new();
    let pet = config.modalities.add("PET").unwrap();
    let model = active_delightsam(&config, &device);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.bpk");
    weights::save_delightsam(&model, &config, &path).unwrap();
    assert!(weights::config_path(&path).is_file());

    let (loaded, loaded_config) = weights::load_delightsam::<Cpu>(&path, &device).unwrap();
    assert_eq!(loaded_config.modalities, config.modalities);
    assert_eq!(loaded_config.modalities.slot("pet"), Ok(pet));
    let x = Tensor::<Cpu, 4>::random([1, 3, 256, 256], burn::tensor::Distribution::Uniform(0.0, 1.0), &device);
    let a = model.forward(x.clone(), pet);
    let b = loaded.forward(x, pet);
    assert_eq!(a.mask_logits.into_data(), b.mask_logits.into_data());
    assert_eq!(a.patch_logits.into_data(), b.patch_logits.into_data());

    // A record without its config, or a config that does not fit, is a clear error.
    std::fs::remove_file(weights::config_path(&path)).unwrap();
    std::fs::write(weights::config_path(&path), "{ not json").unwrap();
    let err = weights::load_delightsam::<Cpu>(&path, &device).unwrap_err().to_string();
    assert!(err.contains("mine.json"), "{err}");
    let small = DeLightSamConfig::new().with_image_encoder(TinyVitConfig::new().with_embed_dims([32, 64, 80, 160]));
    std::fs::write(weights::config_path(&path), serde_json::to_string(&small).unwrap()).unwrap();
    let err = weights::load_delightsam::<Cpu>(&path, &device).unwrap_err().to_string();
    assert!(err.contains("mine.bpk"), "{err}");
}

/// The fast recipe changes only the head; `pack` stores just that, in f16, over LiteMedSAM.
#[test]
fn head_only_record_reproduces_a_fast_recipe_model() {
    let device = Default::default();
    let config = DeLightSamConfig::new();
    let mut model = DeLightSam::from_litemedsam(lite_model(), &config, &device).unwrap();
    // What head training does: move the SP-Generator and the decoder, leave the encoder alone.
    model.sp_generator.prompt_norm.weight = Param::from_tensor(Tensor::ones([256], &device).mul_scalar(0.1));
    let tokens = model.decoder.modality_tokens.weight.val();
    model.decoder.modality_tokens.weight =
        Param::from_tensor(tokens.clone().add(Tensor::random(tokens.dims(), burn::tensor::Distribution::Normal(0.0, 0.1), &device)));

    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.bpk");
    let head = dir.path().join("head.bpk");
    let encoder = dir.path().join("litemedsam.bpk");
    std::fs::copy(weights::default_record_path(), &encoder).unwrap();
    weights::save_delightsam(&model, &config, &full).unwrap();
    weights::save_delightsam_head(&model, &config, &head, &encoder).unwrap();
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&head) * 3 < size(&full), "head {} B vs full {} B", size(&head), size(&full));
    assert_eq!(weights::delightsam_storage(&head).unwrap(), weights::Storage::Head { encoder: "litemedsam.bpk".into() });
    assert_eq!(weights::encoder_record(&head), dir.path().join("litemedsam.bpk"));

    let (loaded, _) = weights::load_delightsam::<Cpu>(&head, &device).unwrap();
    let x = Tensor::<Cpu, 4>::random([1, 3, 256, 256], burn::tensor::Distribution::Uniform(0.0, 1.0), &device);
    let slot = config.modalities.slot("mr").unwrap();
    let relative_error = |a: Tensor<Cpu, 4>, b: Tensor<Cpu, 4>| {
        let (a, b) = (a.into_data().to_vec::<f32>().unwrap(), b.into_data().to_vec::<f32>().unwrap());
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    };
    let (ours, theirs) = (model.forward(x.clone(), slot), loaded.forward(x.clone(), slot));
    let error = relative_error(ours.patch_logits, theirs.patch_logits);
    assert!(error > 0.0, "the head must really be stored in f16");
    assert!(error < 2e-2, "f16 head: patch logits' relative max error {error}");
    // The 0/1 patch grid thresholds those logits, so a cell near 0 may flip (a random input puts
    // many there): the decoder is compared on one grid.
    let grid = ours.grid;
    let a = model.head(model.encode(x.clone(), slot), slot, Some(grid.clone())).mask_logits;
    let b = loaded.head(loaded.encode(x.clone(), slot), slot, Some(grid)).mask_logits;
    let error = relative_error(a, b);
    assert!(error < 2e-2, "f16 head: mask logits' relative max error {error}");

    // Active controllers (the adapt recipe) are stored with the head, in f16, and come back.
    let active = active_delightsam(&config, &device);
    let with_controllers = dir.path().join("adapted.bpk");
    weights::save_delightsam_head(&active, &config, &with_controllers, &encoder).unwrap();
    assert_eq!(
        weights::delightsam_storage(&with_controllers).unwrap(),
        weights::Storage::HeadAndControllers { encoder: "litemedsam.bpk".into() }
    );
    // 918,552 controller parameters in f16: about 1.8 MB.
    assert!(size(&with_controllers) > size(&head) && size(&with_controllers) < size(&head) + 2_500_000);
    let (loaded, _) = weights::load_delightsam::<Cpu>(&with_controllers, &device).unwrap();
    let (ours, theirs) = (active.encode(x.clone(), slot), loaded.encode(x.clone(), slot));
    let fresh = DeLightSam::from_litemedsam(lite_model(), &config, &device).unwrap().encode(x.clone(), slot);
    let error = relative_error(ours.clone(), theirs);
    assert!(error > 0.0, "the controllers must really be stored in f16");
    assert!(error < 1e-2, "f16 controllers: embedding's relative max error {error}");
    assert!(relative_error(ours, fresh) > 10.0 * error, "the controllers must really be loaded");

    // A trained backbone would be lost: refused.
    let mut trained = active;
    let w = trained.image_encoder.neck.conv1.weight.val();
    trained.image_encoder.neck.conv1.weight = Param::from_tensor(w.mul_scalar(1.01));
    let err = weights::save_delightsam_head(&trained, &config, &dir.path().join("no.bpk"), &encoder).unwrap_err().to_string();
    assert!(err.contains("neck") && err.contains("full record"), "{err}");
    assert!(!dir.path().join("no.bpk").exists());

    // A head whose encoder record is gone says which file it needs.
    std::fs::remove_file(&encoder).unwrap();
    let err = weights::load_delightsam::<Cpu>(&head, &device).unwrap_err().to_string();
    assert!(err.contains("litemedsam.bpk"), "{err}");
}

#[test]
fn automatic_segmentation_at_image_size_with_cached_redecode() {
    let device = Default::default();
    let config = DeLightSamConfig::new();
    let model = active_delightsam(&config, &device);
    let mut segmenter = AutoSegmenter::<Cpu>::new(model, config, Provenance::FreshFromLiteMedSam("test".into()), device);
    let frame = ImageSource::open(fixture("raster/colin27_z090.png")).unwrap().frame(0).unwrap();
    let slot = segmenter.slot("MRI").unwrap();
    let first = segmenter.segment("colin", &frame, slot, None).unwrap();
    assert_eq!((first.mask.width(), first.mask.height()), (frame.width, frame.height));
    assert_eq!(first.logits.len(), frame.pixel_count());
    let grid = first.grid.clone().expect("a whole-image segmentation returns its patch grid");
    assert_eq!((grid.width(), grid.height()), (32, 32));
    assert_eq!(first.tiles, 1);
    assert!(!first.timings.cached);

    // Re-decoding with an edited grid re-uses the embedding and changes the mask.
    let mut edited = grid;
    for y in 8..24 {
        for x in 8..24 {
            edited.set(x, y, 1 - edited.get(x, y).unwrap());
        }
    }
    let second = segmenter.segment("colin", &frame, slot, Some(&edited)).unwrap();
    assert!(second.timings.cached);
    assert_eq!(second.grid, Some(edited));
    assert_ne!(first.logits, second.logits);

    // Another modality is another embedding (its controller differs).
    let third = segmenter.segment("colin", &frame, segmenter.slot("ct").unwrap(), None).unwrap();
    assert!(!third.timings.cached);

    let wrong = Mask::new(16, 16);
    let err = segmenter.segment("colin", &frame, slot, Some(&wrong)).err().expect("a 16×16 grid is refused");
    assert!(err.to_string().contains("32×32"), "{err}");
}

/// The shipped default model (models/MODEL_CARD.md) segments a PH2 image it never trained on
/// (IMD407 is in the default split's held-out part) and says it is a trained record.
#[test]
fn the_shipped_default_model_segments_a_held_out_ph2_image() {
    let image = common::shared("ph2-dermoscopy/images/IMD407.jpg");
    let truth = Mask::load(common::shared("ph2-dermoscopy/masks/IMD407.png")).unwrap();
    let mut segmenter = AutoSegmenter::<Cpu>::load(None, Default::default()).unwrap();
    assert!(matches!(segmenter.provenance(), Provenance::Record(p) if p.ends_with("delightsam-default.bpk")));
    let frame = ImageSource::open(&image).unwrap().frame(0).unwrap();
    let slot = segmenter.slot("dermoscopy").unwrap();
    let result = segmenter.segment("IMD407", &frame, slot, None).unwrap();
    let dice = delightsam::train::metrics::dice(result.mask.labels(), truth.labels());
    assert!(dice > 0.9, "Dice {dice:.3} (0.965 when the model was made)");
}

/// A tiled modality: the blended tiles cover the image; one tile that is the whole image gives
/// exactly the whole-image logits (same normalisation, same geometry); a grid, or tiles turned
/// off, segments the image whole; asking twice costs nothing.
#[test]
fn tiled_segmentation_blends_tiles_and_matches_whole_image_on_one_tile() {
    use delightsam::model::tiling::{self, Tiling};
    let device = Default::default();
    let mut config = DeLightSamConfig::new();
    config.modalities.set_tiling("mr", Some(Tiling { long_side: None, overlap: 64 })).unwrap();
    let model = active_delightsam(&config, &device);
    let mut segmenter = AutoSegmenter::<Cpu>::new(model, config, Provenance::FreshFromLiteMedSam("test".into()), device);
    let slot = segmenter.slot("mr").unwrap();
    let frame = ImageSource::open(fixture("raster/colin27_z090.png")).unwrap().frame(0).unwrap();

    let tiled = segmenter.segment("colin", &frame, slot, None).unwrap();
    assert_eq!((tiled.tiles, tiled.grid.is_none()), (1, true));
    segmenter.set_tiles_enabled(false);
    let whole = segmenter.segment("colin", &frame, slot, None).unwrap();
    assert_eq!((whole.tiles, whole.grid.is_some()), (1, true));
    // Equal up to the blend's weight × logit / weight rounding.
    let difference = tiled.logits.iter().zip(&whole.logits).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(difference < 1e-4, "one tile over the whole image is the whole image: differs by {difference}");
    segmenter.set_tiles_enabled(true);

    // 181×217 → 500×600: 3×3 tiles of 256² with 64 px overlap.
    let large = tiling::scale_frame(&frame, (500, 600));
    let result = segmenter.segment("large", &large, slot, None).unwrap();
    assert_eq!(result.tiles, 9);
    assert_eq!((result.mask.width(), result.mask.height()), (500, 600));
    assert_eq!(result.logits.len(), 500 * 600);
    assert!(result.logits.iter().all(|v| v.is_finite()));
    let again = segmenter.segment("large", &large, slot, None).unwrap();
    assert!(again.timings.cached);
    assert_eq!(again.logits, result.logits);
    // A patch grid prompts the whole image.
    let grid = Mask::new(32, 32);
    assert_eq!(segmenter.segment("large", &large, slot, Some(&grid)).unwrap().tiles, 1);
}

/// The shipped model segments retinal vessels in tiles at full resolution (its config tiles
/// fundus): a held-out DRIVE image (22 is in the default split's held-out part).
#[test]
fn the_shipped_default_model_tiles_a_held_out_drive_fundus() {
    let image = common::shared("drive-fundus/images/22.png");
    let truth = Mask::load(common::shared("drive-fundus/masks/22.png")).unwrap();
    let mut segmenter = AutoSegmenter::<Cpu>::load(None, Default::default()).unwrap();
    let frame = ImageSource::open(&image).unwrap().frame(0).unwrap();
    let slot = segmenter.slot("fundus").unwrap();
    assert!(segmenter.tiling(slot).is_some(), "the shipped model tiles fundus");
    let result = segmenter.segment("drive-22", &frame, slot, None).unwrap();
    assert_eq!(result.tiles, 9, "565×584 scaled to 620×640: 3×3 tiles");
    let dice = delightsam::train::metrics::dice(result.mask.labels(), truth.labels());
    assert!(dice > 0.65, "Dice {dice:.3} (0.721 when the model was made)");
}
