//! JPEG cases jpeg-decoder gets wrong, through libjpeg-turbo 3 (turbojpeg-sys builds it from source):
//! - 12-bit lossy JPEG (DICOM "JPEG Extended", 1.2.840.10008.1.2.4.51), which it refuses;
//! - 8-bit colour JPEG whose DICOM header says RGB: the components are R, G, B as stored, and must
//!   not go through the YCbCr→RGB transform a JPEG without JFIF/Adobe markers otherwise implies.

use turbojpeg_sys as tj;

/// A TurboJPEG decompressor, destroyed on drop.
struct Decompressor(tj::tjhandle);

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed exactly once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

impl Decompressor {
    fn new() -> Result<Self, String> {
        // SAFETY: tj3Init has no preconditions; a null result is handled.
        let handle = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as libc_int) };
        if handle.is_null() { Err("cannot start the 12-bit JPEG decoder".to_string()) } else { Ok(Self(handle)) }
    }

    fn last_error(&self) -> String {
        // SAFETY: tj3GetErrorStr returns a NUL-terminated string owned by the handle.
        unsafe {
            let text = tj::tj3GetErrorStr(self.0);
            if text.is_null() {
                "unknown JPEG error".to_string()
            } else {
                std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned()
            }
        }
    }

    fn get(&self, param: tj::TJPARAM) -> i32 {
        // SAFETY: valid handle; reading a parameter has no other preconditions.
        unsafe { tj::tj3Get(self.0, param as libc_int) }
    }
}

#[allow(non_camel_case_types)]
type libc_int = std::os::raw::c_int;

/// Reads the header: (decompressor, width, height, precision).
fn open(jpeg: &[u8]) -> Result<(Decompressor, i32, i32, i32), String> {
    let d = Decompressor::new()?;
    // SAFETY: the pointer and length describe `jpeg`, which outlives the call.
    if unsafe { tj::tj3DecompressHeader(d.0, jpeg.as_ptr(), jpeg.len() as _) } != 0 {
        return Err(format!("JPEG header: {}", d.last_error()));
    }
    let (width, height) = (d.get(tj::TJPARAM_TJPARAM_JPEGWIDTH), d.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT));
    if width <= 0 || height <= 0 || width > 65535 || height > 65535 {
        return Err(format!("JPEG claims {width}×{height} pixels"));
    }
    let precision = d.get(tj::TJPARAM_TJPARAM_PRECISION);
    Ok((d, width, height, precision))
}

/// Decodes an 8-bit, 3-component JPEG to its stored components (no colour transform),
/// interleaved. Only for 4:4:4 data; anything else is not plain RGB.
pub(super) fn decode_untransformed_rgb(jpeg: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
    let (d, width, height, precision) = open(jpeg)?;
    if precision != 8 {
        return Err(format!("expected 8-bit JPEG data, found {precision}-bit"));
    }
    if d.get(tj::TJPARAM_TJPARAM_SUBSAMP) != tj::TJSAMP_TJSAMP_444 as i32 {
        return Err("an RGB JPEG must not be chroma-subsampled".to_string());
    }
    let plane = width as usize * height as usize;
    let mut planes = vec![vec![0u8; plane]; 3];
    let mut pointers: Vec<*mut u8> = planes.iter_mut().map(|p| p.as_mut_ptr()).collect();
    let mut strides = [width; 3];
    // SAFETY: three planes of width × height bytes with strides of `width`, as 4:4:4 needs.
    let status = unsafe {
        tj::tj3DecompressToYUVPlanes8(d.0, jpeg.as_ptr(), jpeg.len() as _, pointers.as_mut_ptr(), strides.as_mut_ptr())
    };
    if status != 0 {
        return Err(format!("JPEG: {}", d.last_error()));
    }
    let mut out = Vec::with_capacity(plane * 3);
    for i in 0..plane {
        out.extend_from_slice(&[planes[0][i], planes[1][i], planes[2][i]]);
    }
    Ok((width as u32, height as u32, out))
}

/// Decodes one 12-bit JPEG frame to 16-bit little-endian samples (grey, or RGB interleaved).
pub(super) fn decode_12bit(jpeg: &[u8], samples: u16) -> Result<(u32, u32, Vec<u8>), String> {
    let (d, width, height, precision) = open(jpeg)?;
    if precision != 12 {
        return Err(format!("expected 12-bit JPEG data, found {precision}-bit"));
    }
    let (format, channels) = if samples == 3 { (tj::TJPF_TJPF_RGB, 3) } else { (tj::TJPF_TJPF_GRAY, 1) };
    let mut out = vec![0i16; width as usize * height as usize * channels];
    // SAFETY: `out` holds width × height × channels samples, what a pitch of 0 (tightly packed
    // rows) in this pixel format writes.
    let status = unsafe { tj::tj3Decompress12(d.0, jpeg.as_ptr(), jpeg.len() as _, out.as_mut_ptr(), 0, format) };
    if status != 0 {
        return Err(format!("12-bit JPEG: {}", d.last_error()));
    }
    let bytes = out.iter().flat_map(|&v| (v.max(0) as u16).to_le_bytes()).collect();
    Ok((width as u32, height as u32, bytes))
}
