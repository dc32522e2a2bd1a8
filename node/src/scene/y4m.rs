//! `camera.y4m`: YUV4MPEG2 video, `C mono` or 4:2:0, read frame by frame.
//! Only luma is kept; chroma and frames the pipeline does not want are
//! skipped with a seek, never decoded.
//!
//! A frame header may carry the exposure the camera took the frame with,
//! as the frame parameter `XEXPOSURE=<positive number>` (an application
//! parameter, which other YUV4MPEG2 readers skip): a scene rendered with
//! auto-exposure says what a real camera would report. Other frame
//! parameters are ignored.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{Location, SceneError};

/// The stream's parameters, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Y4mInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate numerator.
    pub fps_num: u32,
    /// Frame rate denominator.
    pub fps_den: u32,
    /// Bytes of chroma after each luma plane.
    pub chroma_bytes: u64,
    /// Frames in the file (known after [`validate`]; 0 before).
    pub frames: u64,
}

impl Y4mInfo {
    /// Time of frame `i` from the start, milliseconds.
    pub fn frame_time_ms(&self, i: u64) -> i64 {
        (i128::from(i) * 1000 * i128::from(self.fps_den) / i128::from(self.fps_num.max(1))) as i64
    }

    /// Length of the video, milliseconds.
    pub fn duration_ms(&self) -> i64 {
        self.frame_time_ms(self.frames)
    }

    fn luma_bytes(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// One frame's luma.
#[derive(Debug, Clone, PartialEq)]
pub struct Y4mFrame {
    /// Frame number from 0.
    pub index: u64,
    /// `width * height` bytes, or `None` when the frame was skipped.
    pub luma: Option<Vec<u8>>,
    /// The frame's `XEXPOSURE` parameter, if it has one.
    pub exposure: Option<f32>,
}

/// The `XEXPOSURE` parameter of a `FRAME` line: `Ok(None)` without one, an
/// error for a value that is not a positive finite number.
fn frame_exposure(line: &str) -> Result<Option<f32>, String> {
    let Some(value) = line
        .split(' ')
        .skip(1)
        .find_map(|p| p.strip_prefix("XEXPOSURE="))
    else {
        return Ok(None);
    };
    match value.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Some(v)),
        _ => Err(format!(
            "XEXPOSURE={} is not a positive number",
            truncate(value)
        )),
    }
}

/// A YUV4MPEG2 file being read.
#[derive(Debug)]
pub struct Y4mReader {
    path: PathBuf,
    input: BufReader<File>,
    offset: u64,
    info: Y4mInfo,
    next_index: u64,
}

const MAX_LINE: usize = 4096;
const MAX_PIXELS: u64 = 8192 * 8192;

impl Y4mReader {
    /// Opens a file and reads its header.
    pub fn open(path: &Path) -> Result<Y4mReader, SceneError> {
        let file = File::open(path).map_err(|e| SceneError::io(path, e))?;
        let mut r = Y4mReader {
            path: path.to_path_buf(),
            input: BufReader::new(file),
            offset: 0,
            info: Y4mInfo {
                width: 0,
                height: 0,
                fps_num: 0,
                fps_den: 0,
                chroma_bytes: 0,
                frames: 0,
            },
            next_index: 0,
        };
        let line = r
            .read_line()?
            .ok_or_else(|| r.bad(0, "expected a `YUV4MPEG2 ` header, found an empty file"))?;
        r.info = parse_header(&r.path, &line)?;
        Ok(r)
    }

    /// The header's parameters.
    pub fn info(&self) -> Y4mInfo {
        self.info
    }

    fn bad(&self, at: u64, problem: impl Into<String>) -> SceneError {
        SceneError::malformed(&self.path, Location::Offset(at), problem)
    }

    /// Reads one `\n`-terminated line; `None` at a clean end of file.
    fn read_line(&mut self) -> Result<Option<String>, SceneError> {
        let start = self.offset;
        let mut buf = Vec::new();
        let n = (&mut self.input)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .map_err(|e| SceneError::io(&self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.offset += n as u64;
        if buf.last() != Some(&b'\n') {
            return Err(self.bad(
                start,
                format!("expected a line ending in a newline within {MAX_LINE} bytes: the file is cut short or not YUV4MPEG2"),
            ));
        }
        buf.pop();
        String::from_utf8(buf)
            .map(Some)
            .map_err(|_| self.bad(start, "expected an ASCII header line"))
    }

    /// The next frame; with `want_luma == false` the frame is skipped without
    /// reading its pixels. `None` at the end of the file.
    pub fn next_frame(&mut self, want_luma: bool) -> Result<Option<Y4mFrame>, SceneError> {
        let start = self.offset;
        let Some(line) = self.read_line()? else {
            return Ok(None);
        };
        if line != "FRAME" && !line.starts_with("FRAME ") {
            return Err(self.bad(
                start,
                format!("expected a `FRAME` marker, found `{}`", truncate(&line)),
            ));
        }
        let exposure = frame_exposure(&line).map_err(|m| self.bad(start, m))?;
        let luma_len = self.info.luma_bytes();
        let data_at = self.offset;
        let luma = if want_luma {
            let mut v = vec![0u8; luma_len as usize];
            self.read_exact_or_bad(&mut v, data_at, luma_len)?;
            self.skip(self.info.chroma_bytes, data_at)?;
            Some(v)
        } else {
            self.skip(luma_len + self.info.chroma_bytes, data_at)?;
            None
        };
        let index = self.next_index;
        self.next_index += 1;
        Ok(Some(Y4mFrame {
            index,
            luma,
            exposure,
        }))
    }

    fn read_exact_or_bad(
        &mut self,
        buf: &mut [u8],
        data_at: u64,
        want: u64,
    ) -> Result<(), SceneError> {
        match self.input.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(self.bad(
                data_at,
                format!(
                    "expected {want} bytes of frame {} but the file ends first",
                    self.next_index
                ),
            )),
            Err(e) => Err(SceneError::io(&self.path, e)),
        }
    }

    fn skip(&mut self, n: u64, data_at: u64) -> Result<(), SceneError> {
        let target = self.offset + n;
        let len = self
            .input
            .get_ref()
            .metadata()
            .map_err(|e| SceneError::io(&self.path, e))?
            .len();
        if target > len {
            return Err(self.bad(
                data_at,
                format!(
                    "expected {} bytes of frame {} but the file ends after {}",
                    target - data_at,
                    self.next_index,
                    len.saturating_sub(data_at)
                ),
            ));
        }
        self.input
            .seek(SeekFrom::Start(target))
            .map_err(|e| SceneError::io(&self.path, e))?;
        self.offset = target;
        Ok(())
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn parse_header(path: &Path, line: &str) -> Result<Y4mInfo, SceneError> {
    let bad = |problem: String| SceneError::malformed(path, Location::Offset(0), problem);
    let mut parts = line.split(' ');
    if parts.next() != Some("YUV4MPEG2") {
        return Err(bad(format!(
            "expected the magic `YUV4MPEG2`, found `{}`",
            truncate(line)
        )));
    }
    let (mut w, mut h, mut fps, mut colour) = (None, None, None, "420jpeg".to_string());
    for p in parts.filter(|p| !p.is_empty()) {
        let (tag, val) = p.split_at(1);
        match tag {
            "W" => w = val.parse::<u32>().ok().filter(|v| *v > 0),
            "H" => h = val.parse::<u32>().ok().filter(|v| *v > 0),
            "F" => {
                fps = val.split_once(':').and_then(|(n, d)| {
                    Some((n.parse::<u32>().ok()?, d.parse::<u32>().ok()?))
                        .filter(|(n, d)| *n > 0 && *d > 0)
                });
                if fps.is_none() {
                    return Err(bad(format!(
                        "expected a frame rate `F<num>:<den>` with both positive, found `F{val}`"
                    )));
                }
            }
            "C" => colour = val.to_string(),
            "I" | "A" | "X" => {}
            _ => {
                return Err(bad(format!(
                    "expected a header parameter W, H, F, I, A, C or X, found `{}`",
                    truncate(p)
                )));
            }
        }
    }
    let (Some(width), Some(height)) = (w, h) else {
        return Err(bad(
            "expected positive width `W` and height `H` in the header".into(),
        ));
    };
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(bad(format!(
            "frame size {width}x{height} is larger than this reader accepts"
        )));
    }
    let Some((fps_num, fps_den)) = fps else {
        return Err(bad(
            "expected a frame rate `F<num>:<den>` in the header".into()
        ));
    };
    let chroma_bytes = match colour.as_str() {
        "mono" => 0,
        "420" | "420jpeg" | "420paldv" | "420mpeg2" => {
            2 * (u64::from(width).div_ceil(2) * u64::from(height).div_ceil(2))
        }
        other => {
            return Err(bad(format!(
                "expected colour space `C mono` or 4:2:0, found `C{}`",
                truncate(other)
            )));
        }
    };
    Ok(Y4mInfo {
        width,
        height,
        fps_num,
        fps_den,
        chroma_bytes,
        frames: 0,
    })
}

/// Reads the whole file's structure (headers and frame markers, seeking over
/// pixels) and returns its parameters with the frame count.
pub fn validate(path: &Path) -> Result<Y4mInfo, SceneError> {
    let mut r = Y4mReader::open(path)?;
    let mut frames = 0;
    while r.next_frame(false)?.is_some() {
        frames += 1;
    }
    Ok(Y4mInfo { frames, ..r.info() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, bytes: &[u8]) -> PathBuf {
        let p = dir.join("camera.y4m");
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn video(header: &str, frames: usize, frame_len: usize) -> Vec<u8> {
        let mut v = format!("{header}\n").into_bytes();
        for i in 0..frames {
            v.extend_from_slice(b"FRAME\n");
            v.extend(std::iter::repeat_n(i as u8, frame_len));
        }
        v
    }

    #[test]
    fn reads_mono_and_420() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            &video("YUV4MPEG2 W4 H2 F2:1 Ip A1:1 Cmono", 3, 8),
        );
        let info = validate(&p).unwrap();
        assert_eq!(
            (info.width, info.height, info.frames, info.duration_ms()),
            (4, 2, 3, 1500)
        );
        let mut r = Y4mReader::open(&p).unwrap();
        assert_eq!(r.next_frame(false).unwrap().unwrap().luma, None);
        assert_eq!(
            r.next_frame(true).unwrap().unwrap().luma,
            Some(vec![1u8; 8])
        );
        // 4:2:0 of 3x3: 9 luma + 2 * 2*2 chroma.
        let p = write(dir.path(), &video("YUV4MPEG2 W3 H3 F25:1 C420jpeg", 2, 17));
        let mut r = Y4mReader::open(&p).unwrap();
        r.next_frame(false).unwrap();
        assert_eq!(
            r.next_frame(true).unwrap().unwrap().luma,
            Some(vec![1u8; 9])
        );
        assert!(r.next_frame(true).unwrap().is_none());
    }

    #[test]
    fn frames_may_say_their_exposure() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = b"YUV4MPEG2 W2 H2 F1:1 Cmono\n".to_vec();
        for header in [
            "FRAME XEXPOSURE=2500 Ip",
            "FRAME",
            "FRAME XOTHER=1 XEXPOSURE=0.5",
        ] {
            v.extend_from_slice(header.as_bytes());
            v.extend_from_slice(b"\n\x10\x10\x10\x10");
        }
        let p = write(dir.path(), &v);
        assert_eq!(validate(&p).unwrap().frames, 3);
        let mut r = Y4mReader::open(&p).unwrap();
        let got: Vec<Option<f32>> = (0..3)
            .map(|_| r.next_frame(false).unwrap().unwrap().exposure)
            .collect();
        assert_eq!(got, [Some(2500.0), None, Some(0.5)]);
        for bad in ["-1", "0", "inf", "NaN", "", "2.5ms"] {
            let mut v = b"YUV4MPEG2 W2 H2 F1:1 Cmono\nFRAME\n\0\0\0\0".to_vec();
            v.extend_from_slice(format!("FRAME XEXPOSURE={bad}\n").as_bytes());
            v.extend_from_slice(b"\0\0\0\0");
            let p = write(dir.path(), &v);
            let e = validate(&p).unwrap_err().to_string();
            assert!(
                e.contains("byte offset 37") && e.contains("is not a positive number"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn malformed_files_name_offset_and_expectation() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "empty file"),
            (b"RIFF....".to_vec(), "newline"),
            (b"YUV4MPEG1 W4 H2 F1:1\n".to_vec(), "expected the magic"),
            (b"YUV4MPEG2 W4 F1:1\n".to_vec(), "width"),
            (b"YUV4MPEG2 W4 H2 F1:0\n".to_vec(), "frame rate"),
            (b"YUV4MPEG2 W4 H2 F1:1 C444\n".to_vec(), "C444"),
            (
                b"YUV4MPEG2 W4 H2 F1:1 Cmono\nFRAMX\n12345678".to_vec(),
                "byte offset 27: expected a `FRAME` marker",
            ),
            (
                video("YUV4MPEG2 W4 H2 F1:1 Cmono", 2, 8)[..50].to_vec(),
                "frame 1",
            ),
            (
                video("YUV4MPEG2 W4 H2 F1:1 Cmono", 2, 8)[..44].to_vec(),
                "byte offset 41: expected a line ending in a newline",
            ),
        ];
        for (bytes, want) in cases {
            let p = write(dir.path(), &bytes);
            let e = validate(&p).unwrap_err().to_string();
            assert!(
                e.contains("camera.y4m") && e.contains(want),
                "{e} (wanted {want})"
            );
        }
    }
}
