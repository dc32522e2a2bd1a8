//! Camera frames to luma: the pure part of the camera drivers, shared by the
//! V4L2 ([`super::v4l_camera`]) and pipe ([`super::pipe_camera`]) sources.
//!
//! Every function here takes untrusted bytes (a driver buffer, a pipe) and
//! returns a typed [`FrameError`] for anything malformed; none panics.
//!
//! - YUYV (packed 4:2:2, `Y0 U Y1 V`): the luma is every other byte.
//! - I420 (planar 4:2:0, as `rpicam-vid --codec yuv420` writes): the luma is
//!   the first plane, `w*h` bytes, followed by the U and V planes.
//! - MJPEG: each frame is a JPEG, decoded by `zune-jpeg` straight to
//!   grayscale in strict mode, so a truncated or damaged frame is an error
//!   (the camera skips and counts it) rather than a half-grey image that
//!   would look like motion.

use fusion::GrayFrame;
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::downscale::downscale_luma;

/// Largest frame side accepted, pixels (also the JPEG decoder's limit, so a
/// corrupt header cannot make it allocate gigabytes).
pub const MAX_SIDE: u32 = 4096;

/// How a camera lays out a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed YUV 4:2:2, `Y0 U Y1 V` (V4L2 `YUYV`).
    Yuyv,
    /// Motion JPEG: one JPEG per frame (V4L2 `MJPG`).
    Mjpeg,
    /// Planar YUV 4:2:0: Y plane, then U and V at half size in both
    /// directions (V4L2 `YU12`; `rpicam-vid --codec yuv420`).
    I420,
}

impl PixelFormat {
    /// Bytes of one `w`×`h` frame, for the fixed-size formats (`None` for
    /// MJPEG, or if the size overflows). Chroma planes of I420 round up for
    /// odd sizes.
    pub fn frame_len(self, w: u32, h: u32) -> Option<usize> {
        let (w, h) = (w as usize, h as usize);
        match self {
            PixelFormat::Yuyv => w.checked_mul(h)?.checked_mul(2),
            PixelFormat::I420 => {
                let chroma = w.div_ceil(2).checked_mul(h.div_ceil(2))?;
                w.checked_mul(h)?.checked_add(chroma.checked_mul(2)?)
            }
            PixelFormat::Mjpeg => None,
        }
    }

    /// The V4L2 four-character code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Mjpeg => *b"MJPG",
            PixelFormat::I420 => *b"YU12",
        }
    }

    /// The format of a V4L2 four-character code, if supported (`JPEG` is
    /// treated as MJPEG, as UVC drivers use both).
    pub fn from_fourcc(code: &[u8; 4]) -> Option<PixelFormat> {
        match code {
            b"YUYV" => Some(PixelFormat::Yuyv),
            b"MJPG" | b"JPEG" => Some(PixelFormat::Mjpeg),
            b"YU12" => Some(PixelFormat::I420),
            _ => None,
        }
    }

    /// Lower-case name for logs and settings.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Yuyv => "yuyv",
            PixelFormat::Mjpeg => "mjpeg",
            PixelFormat::I420 => "i420",
        }
    }
}

impl std::fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A frame that cannot be turned into luma.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame size itself is unusable (zero, too large, odd width for YUYV).
    #[error("unusable frame size {width}x{height} for {format}")]
    BadSize {
        /// Pixel format.
        format: PixelFormat,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// A fixed-size frame with the wrong number of bytes.
    #[error("{format} frame of {actual} bytes, expected {expected}")]
    Length {
        /// Pixel format.
        format: PixelFormat,
        /// Bytes a frame must have.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// Not a JPEG at all (no start-of-image marker), e.g. an empty buffer.
    #[error("MJPEG frame of {len} bytes does not start with a JPEG marker")]
    NotJpeg {
        /// Bytes received.
        len: usize,
    },
    /// No end-of-image marker: the transfer was cut short.
    #[error("MJPEG frame of {len} bytes is truncated (no end-of-image marker)")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// The JPEG decoder rejected the frame (truncated, damaged, unsupported,
    /// or declaring a size over [`MAX_SIDE`]).
    #[error("corrupt MJPEG frame: {0}")]
    Jpeg(String),
    /// The driver flagged the buffer as damaged (V4L2 `ERROR` flag).
    #[error("the driver flagged the frame as damaged")]
    Damaged,
    /// The JPEG decoded fine but not to the negotiated size.
    #[error("MJPEG frame is {actual_w}x{actual_h}, expected {width}x{height}")]
    SizeMismatch {
        /// Negotiated width.
        width: u32,
        /// Negotiated height.
        height: u32,
        /// Decoded width.
        actual_w: u32,
        /// Decoded height.
        actual_h: u32,
    },
}

fn check_size(format: PixelFormat, w: u32, h: u32) -> Result<(), FrameError> {
    let odd = format == PixelFormat::Yuyv && !w.is_multiple_of(2);
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || odd {
        return Err(FrameError::BadSize {
            format,
            width: w,
            height: h,
        });
    }
    Ok(())
}

fn check_len(format: PixelFormat, w: u32, h: u32, bytes: &[u8]) -> Result<(), FrameError> {
    // Sizes are checked first, so the length cannot overflow.
    let expected = format.frame_len(w, h).unwrap_or(usize::MAX);
    if bytes.len() != expected {
        return Err(FrameError::Length {
            format,
            expected,
            actual: bytes.len(),
        });
    }
    Ok(())
}

/// The luma (`w*h` bytes, row-major) of one `w`×`h` frame.
///
/// YUYV and I420 frames must be exactly [`PixelFormat::frame_len`] bytes
/// (no row padding: a driver's padded rows are packed before this). An
/// MJPEG frame is decoded to grayscale and must decode to exactly `w`×`h`:
/// the negotiated size; anything else is [`FrameError::SizeMismatch`] (a
/// confused driver), not silently another size.
pub fn to_luma(format: PixelFormat, w: u32, h: u32, bytes: &[u8]) -> Result<Vec<u8>, FrameError> {
    check_size(format, w, h)?;
    match format {
        PixelFormat::Yuyv => {
            check_len(format, w, h, bytes)?;
            Ok(bytes.chunks_exact(2).map(|p| p[0]).collect())
        }
        PixelFormat::I420 => {
            check_len(format, w, h, bytes)?;
            Ok(bytes[..w as usize * h as usize].to_vec())
        }
        PixelFormat::Mjpeg => {
            let (dw, dh, luma) = decode_jpeg_luma(bytes)?;
            if (dw, dh) != (w, h) {
                return Err(FrameError::SizeMismatch {
                    width: w,
                    height: h,
                    actual_w: dw,
                    actual_h: dh,
                });
            }
            Ok(luma)
        }
    }
}

/// Decodes one JPEG to grayscale: (width, height, luma).
///
/// The frame must start with a start-of-image marker and end with an
/// end-of-image marker (trailing zero bytes, the padding some UVC cameras
/// leave, are ignored): a frame cut short is [`FrameError::Truncated`] even
/// when the cut falls where the decoder would not notice. Then the decoder
/// runs in strict mode: a premature end of data, an unexpected marker inside
/// the entropy-coded data or other damage is an error instead of being
/// papered over with grey. Not every damage is detectable: data lost in the
/// middle of a frame that still ends with an end-of-image marker decodes to
/// a wrong picture (the V4L2 driver's error flag covers most of those).
/// Baseline MJPEG without Huffman tables (common in UVC cameras) gets the
/// standard tables. The decoder runs under `catch_unwind` as a last line of
/// defence: a decoder bug on hostile bytes must not stop the node.
pub fn decode_jpeg_luma(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), FrameError> {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return Err(FrameError::NotJpeg { len: bytes.len() });
    }
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if end < 4 || bytes[end - 2..end] != [0xFF, 0xD9] {
        return Err(FrameError::Truncated { len: bytes.len() });
    }
    let bytes = &bytes[..end];
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::Luma)
        .set_max_width(MAX_SIDE as usize)
        .set_max_height(MAX_SIDE as usize)
        .set_strict_mode(true);
    let decoded = std::panic::catch_unwind(|| {
        let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
        let pixels = decoder
            .decode()
            .map_err(|e| FrameError::Jpeg(e.to_string()))?;
        let info = decoder
            .info()
            .ok_or_else(|| FrameError::Jpeg("no image information".into()))?;
        Ok::<_, FrameError>((u32::from(info.width), u32::from(info.height), pixels))
    });
    let (w, h, pixels) = match decoded {
        Ok(r) => r?,
        Err(_) => return Err(FrameError::Jpeg("the decoder panicked".into())),
    };
    if pixels.len() != w as usize * h as usize {
        return Err(FrameError::Jpeg(format!(
            "decoded {} bytes for a {w}x{h} grayscale image",
            pixels.len()
        )));
    }
    Ok((w, h, pixels))
}

/// [`to_luma`], then [`downscale_luma`] to fit `max_w`×`max_h`: the frame
/// the pipeline analyses, stamped `t_ms`.
pub fn reduce(
    format: PixelFormat,
    w: u32,
    h: u32,
    bytes: &[u8],
    max_w: u32,
    max_h: u32,
    t_ms: i64,
) -> Result<GrayFrame, FrameError> {
    let (width, height, luma) = if format == PixelFormat::I420 {
        // The luma plane is already in place: no copy.
        check_size(format, w, h)?;
        check_len(format, w, h, bytes)?;
        downscale_luma(&bytes[..w as usize * h as usize], w, h, max_w, max_h)
    } else {
        let luma = to_luma(format, w, h, bytes)?;
        downscale_luma(&luma, w, h, max_w, max_h)
    };
    Ok(GrayFrame {
        t_ms,
        width,
        height,
        luma,
        exposure: None,
    })
}

/// Copies `rows` rows of `row_len` bytes out of a buffer whose rows are
/// `stride` bytes apart (a driver's padded lines), so the result can go to
/// [`to_luma`]. `None` if the buffer is too short or `stride < row_len`.
pub fn pack_rows(bytes: &[u8], row_len: usize, stride: usize, rows: usize) -> Option<Vec<u8>> {
    if stride < row_len || rows == 0 {
        return None;
    }
    let needed = stride.checked_mul(rows - 1)?.checked_add(row_len)?;
    if bytes.len() < needed {
        return None;
    }
    let mut out = Vec::with_capacity(row_len * rows);
    for r in 0..rows {
        out.extend_from_slice(&bytes[r * stride..r * stride + row_len]);
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `w`×`h` luma test pattern: a diagonal gradient.
    pub(crate) fn gradient(w: u32, h: u32) -> Vec<u8> {
        (0..h)
            .flat_map(|y| (0..w).map(move |x| ((x * 255 / w.max(2)) / 2 + (y * 255 / h) / 2) as u8))
            .collect()
    }

    /// An I420 frame with the given luma and constant chroma.
    pub(crate) fn i420(w: u32, h: u32, luma: &[u8]) -> Vec<u8> {
        let mut f = luma.to_vec();
        let c = (w.div_ceil(2) * h.div_ceil(2)) as usize;
        f.extend(std::iter::repeat_n(90u8, c));
        f.extend(std::iter::repeat_n(200u8, c));
        f
    }

    fn yuyv(luma: &[u8]) -> Vec<u8> {
        luma.chunks(2)
            .flat_map(|p| [p[0], 100, p[1], 150])
            .collect()
    }

    fn jpeg(w: u16, h: u16, luma: &[u8], quality: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let enc = jpeg_encoder::Encoder::new(&mut out, quality);
        enc.encode(luma, w, h, jpeg_encoder::ColorType::Luma)
            .unwrap();
        out
    }

    fn mean_abs_error(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
            .sum::<f64>()
            / a.len() as f64
    }

    #[test]
    fn frame_lengths() {
        assert_eq!(PixelFormat::Yuyv.frame_len(640, 480), Some(614_400));
        assert_eq!(PixelFormat::I420.frame_len(640, 480), Some(460_800));
        assert_eq!(PixelFormat::I420.frame_len(3, 3), Some(9 + 2 * 4));
        assert_eq!(PixelFormat::Mjpeg.frame_len(640, 480), None);
        for f in [PixelFormat::Yuyv, PixelFormat::Mjpeg, PixelFormat::I420] {
            assert_eq!(PixelFormat::from_fourcc(&f.fourcc()), Some(f));
        }
        assert_eq!(PixelFormat::from_fourcc(b"H264"), None);
    }

    #[test]
    fn yuyv_luma_is_every_other_byte() {
        let (w, h) = (8, 4);
        let luma: Vec<u8> = (0..w * h).map(|i| (i * 7) as u8).collect();
        assert_eq!(
            to_luma(PixelFormat::Yuyv, w, h, &yuyv(&luma)).unwrap(),
            luma
        );
    }

    #[test]
    fn i420_luma_is_the_first_plane() {
        let (w, h) = (6, 4);
        let luma: Vec<u8> = (0..w * h).map(|i| (255 - i * 3) as u8).collect();
        assert_eq!(
            to_luma(PixelFormat::I420, w, h, &i420(w, h, &luma)).unwrap(),
            luma
        );
    }

    #[test]
    fn wrong_lengths_and_sizes_are_errors() {
        let f = yuyv(&[1u8; 16]);
        assert_eq!(
            to_luma(PixelFormat::Yuyv, 4, 4, &f[..31]),
            Err(FrameError::Length {
                format: PixelFormat::Yuyv,
                expected: 32,
                actual: 31
            })
        );
        assert!(matches!(
            to_luma(PixelFormat::I420, 4, 4, &[0u8; 25]),
            Err(FrameError::Length { expected: 24, .. })
        ));
        assert!(matches!(
            to_luma(PixelFormat::Yuyv, 3, 2, &[0u8; 12]),
            Err(FrameError::BadSize { .. })
        ));
        assert!(matches!(
            to_luma(PixelFormat::I420, 0, 4, &[]),
            Err(FrameError::BadSize { .. })
        ));
        assert!(matches!(
            to_luma(PixelFormat::I420, 100_000, 100_000, &[]),
            Err(FrameError::BadSize { .. })
        ));
        assert!(matches!(
            to_luma(PixelFormat::Mjpeg, 4, 4, &[]),
            Err(FrameError::NotJpeg { len: 0 })
        ));
    }

    #[test]
    fn mjpeg_decodes_close_to_the_original() {
        let (w, h) = (640u32, 480u32);
        let luma = gradient(w, h);
        let j = jpeg(w as u16, h as u16, &luma, 90);
        let out = to_luma(PixelFormat::Mjpeg, w, h, &j).unwrap();
        let mae = mean_abs_error(&out, &luma);
        assert!(mae < 3.0, "mean absolute error {mae}");
    }

    #[test]
    fn mjpeg_of_another_size_is_a_mismatch() {
        let luma = gradient(32, 16);
        let j = jpeg(32, 16, &luma, 90);
        assert_eq!(
            to_luma(PixelFormat::Mjpeg, 640, 480, &j),
            Err(FrameError::SizeMismatch {
                width: 640,
                height: 480,
                actual_w: 32,
                actual_h: 16
            })
        );
        assert_eq!(decode_jpeg_luma(&j).unwrap().0, 32);
    }

    #[test]
    fn truncated_mjpeg_is_an_error() {
        let (w, h) = (320u32, 240u32);
        let j = jpeg(w as u16, h as u16, &gradient(w, h), 90);
        for keep in [
            j.len() - 1,
            j.len() - 2,
            j.len() * 3 / 4,
            j.len() / 2,
            600,
            10,
            3,
        ] {
            let r = to_luma(PixelFormat::Mjpeg, w, h, &j[..keep]);
            assert!(r.is_err(), "kept {keep} of {} bytes: decoded", j.len());
        }
        // Zero padding after the end-of-image marker is fine.
        let mut padded = j.clone();
        padded.extend_from_slice(&[0u8; 100]);
        assert!(to_luma(PixelFormat::Mjpeg, w, h, &padded).is_ok());
    }

    #[test]
    fn mjpeg_with_garbage_is_an_error() {
        let (w, h) = (320u32, 240u32);
        let j = jpeg(w as u16, h as u16, &gradient(w, h), 90);
        // Garbage (with marker bytes in it, as a broken USB transfer leaves)
        // in the middle of the entropy-coded data.
        let mut bad = j.clone();
        let mid = bad.len() / 2;
        for (i, b) in bad[mid..mid + 64].iter_mut().enumerate() {
            *b = [0xFF, 0xC4, 0x13, 0x77][i % 4];
        }
        assert!(to_luma(PixelFormat::Mjpeg, w, h, &bad).is_err());
        // A damaged header.
        let mut bad = j.clone();
        for b in &mut bad[2..40] {
            *b = 0xFF;
        }
        assert!(to_luma(PixelFormat::Mjpeg, w, h, &bad).is_err());
        // Pure noise after a start-of-image marker.
        let mut noise = vec![0xFF, 0xD8];
        let mut x: u32 = 1;
        for _ in 0..5000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            noise.push((x >> 16) as u8);
        }
        assert!(to_luma(PixelFormat::Mjpeg, w, h, &noise).is_err());
    }

    #[test]
    fn huge_declared_jpeg_size_is_refused() {
        // A valid 16x16 JPEG whose frame header claims 60000x60000.
        let mut j = jpeg(16, 16, &[128u8; 256], 90);
        let sof = j
            .windows(2)
            .position(|p| p == [0xFF, 0xC0])
            .expect("baseline SOF0");
        // SOF0: FF C0, length (2), precision (1), height (2), width (2).
        j[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
        assert!(matches!(decode_jpeg_luma(&j), Err(FrameError::Jpeg(_))));
    }

    #[test]
    fn vga_reduces_to_80x60() {
        let (w, h) = (640u32, 480u32);
        let luma = gradient(w, h);
        let expect = downscale_luma(&luma, w, h, 80, 60);
        for (format, bytes) in [
            (PixelFormat::Yuyv, yuyv(&luma)),
            (PixelFormat::I420, i420(w, h, &luma)),
        ] {
            let f = reduce(format, w, h, &bytes, 80, 60, 1234).unwrap();
            assert_eq!((f.t_ms, f.width, f.height), (1234, 80, 60));
            assert_eq!(f.luma, expect.2, "{format}");
        }
        let j = jpeg(w as u16, h as u16, &luma, 90);
        let f = reduce(PixelFormat::Mjpeg, w, h, &j, 80, 60, 1234).unwrap();
        assert_eq!((f.width, f.height), (80, 60));
        assert!(mean_abs_error(&f.luma, &expect.2) < 2.0);
    }

    #[test]
    fn padded_rows_are_packed() {
        let bytes = [1, 2, 9, 3, 4, 9, 5, 6];
        assert_eq!(pack_rows(&bytes, 2, 3, 3), Some(vec![1, 2, 3, 4, 5, 6]));
        assert_eq!(pack_rows(&bytes, 2, 3, 4), None);
        assert_eq!(pack_rows(&bytes, 4, 3, 1), None);
    }
}
