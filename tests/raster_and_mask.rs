//! Raster formats in, masks out.

mod common;

use common::fixture;
use delightsam::imaging::{ImageError, ImageSource, Mask, SourceFormat, write_mask_png};

#[test]
fn each_raster_format_keeps_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let grey8: Vec<u8> = (0..48u8).map(|i| i * 5).collect();
    let grey16: Vec<u16> = (0..48u16).map(|i| i * 1300).collect();
    let rgb8: Vec<u8> = (0..48 * 3).map(|i| (i * 7 % 256) as u8).collect();

    let cases: Vec<(&str, SourceFormat, u8, f64)> = vec![
        ("g8.png", SourceFormat::Png, 1, 235.0),
        ("g16.png", SourceFormat::Png, 1, 61100.0),
        ("g16.tif", SourceFormat::Tiff, 1, 61100.0),
        ("rgb.bmp", SourceFormat::Bmp, 3, 255.0),
        ("rgb.tif", SourceFormat::Tiff, 3, 255.0),
    ];
    for (name, format, channels, max) in cases {
        let path = dir.path().join(name);
        match name {
            "g8.png" => image::GrayImage::from_raw(8, 6, grey8.clone()).unwrap().save(&path).unwrap(),
            n if n.starts_with("g16") => {
                image::ImageBuffer::<image::Luma<u16>, _>::from_raw(8, 6, grey16.clone()).unwrap().save(&path).unwrap()
            }
            _ => image::RgbImage::from_raw(8, 6, rgb8.clone()).unwrap().save(&path).unwrap(),
        }
        let source = ImageSource::open(&path).unwrap();
        assert_eq!(source.meta().format, format, "{name}");
        let frame = source.frame(0).unwrap();
        assert_eq!((frame.width, frame.height, frame.channels), (8, 6, channels), "{name}");
        assert_eq!(frame.stats().max, max, "{name}");
    }
}

#[test]
fn jpeg_reads_as_its_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flat.jpg");
    image::RgbImage::from_pixel(16, 16, image::Rgb([200, 100, 50])).save(&path).unwrap();
    let frame = ImageSource::open(&path).unwrap().frame(0).unwrap();
    assert_eq!(frame.channels, 3);
    let px = frame.value_at(8, 8).unwrap();
    assert!((px[0] - 200.0).abs() < 4.0 && (px[1] - 100.0).abs() < 4.0 && (px[2] - 50.0).abs() < 4.0, "{px:?}");
}

#[test]
fn real_png_fixtures_open() {
    let frame = ImageSource::open(fixture("raster/colin27_z090.png")).unwrap().frame(0).unwrap();
    assert_eq!((frame.width, frame.height), (181, 217));
    assert!(frame.stats().max > 100.0);
}

#[test]
fn huge_headers_are_refused_before_allocating() {
    let err = ImageSource::open(fixture("bad/huge_header.png")).err().expect("must refuse");
    assert!(matches!(err, ImageError::TooLarge { width: 100_000, height: 100_000, .. }), "{err}");
}

#[test]
fn a_bmp_claiming_more_rows_than_it_holds_is_refused_and_a_whole_one_opens() {
    // 32768×32768 32-bit claimed by a 5 KB file (found by the fuzzer: 4 GiB allocated).
    let err = ImageSource::open(fixture("fuzz/bmp-32768-square-claimed-by-5kb-file.bmp")).err().expect("must refuse");
    assert!(err.to_string().contains("more than a 5242-byte BMP holds"), "{err}");

    // The same rule lets a complete file through, and one row short is refused.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("whole.bmp");
    image::RgbImage::from_raw(7, 5, (0..7 * 5 * 3).map(|i| i as u8).collect()).unwrap().save(&path).unwrap();
    assert!(ImageSource::open(&path).is_ok());
    let bytes = std::fs::read(&path).unwrap();
    let short = dir.path().join("short.bmp");
    std::fs::write(&short, &bytes[..bytes.len() - 2 * 24]).unwrap();
    let err = ImageSource::open(&short).err().expect("must refuse");
    assert!(err.to_string().contains("short.bmp") && err.to_string().contains("BMP holds"), "{err}");
}

#[test]
fn mask_export_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture("raster/colin27_z090.png");
    let mut mask = Mask::new(181, 217);
    for y in 50..120 {
        for x in 40..(40 + y / 2) {
            mask.set(x, y, 1);
        }
    }
    let out = dir.path().join("colin27_z090_mask.png");
    write_mask_png(&mask, &out, &source).unwrap();

    let written = image::open(&out).unwrap();
    assert_eq!(written.color(), image::ColorType::L8);
    let pixels = written.into_luma8();
    assert!(pixels.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255), "an exported mask is 0/255");
    assert_eq!(pixels.get_pixel(45, 100).0[0], 255);
    assert_eq!(pixels.get_pixel(10, 10).0[0], 0);

    let back = Mask::load(&out).unwrap();
    assert_eq!(back, mask);
    assert_eq!(back.foreground_count(), mask.foreground_count());
    back.check_size(&out, 181, 217).unwrap();
    assert!(back.check_size(&out, 256, 256).is_err());
}

#[test]
fn masks_load_as_0_1_or_label_maps() {
    let dir = tempfile::tempdir().unwrap();
    let ones = dir.path().join("ones.png");
    image::GrayImage::from_raw(2, 2, vec![0, 1, 1, 0]).unwrap().save(&ones).unwrap();
    assert_eq!(Mask::load(&ones).unwrap().labels(), &[0, 1, 1, 0]);
    let labels = dir.path().join("labels.png");
    image::GrayImage::from_raw(2, 2, vec![0, 3, 7, 0]).unwrap().save(&labels).unwrap();
    assert_eq!(Mask::load(&labels).unwrap().labels(), &[0, 3, 7, 0]);
}

#[test]
fn mask_export_refuses_the_source_path() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("scan.png");
    std::fs::copy(fixture("raster/colin27_z090.png"), &src).unwrap();
    let before = std::fs::read(&src).unwrap();
    let err = write_mask_png(&Mask::new(181, 217), &src, &src).unwrap_err();
    assert!(matches!(err, ImageError::WouldOverwriteSource { .. }));
    assert_eq!(std::fs::read(&src).unwrap(), before);
}
