//! Thumbnails of photo attachments: a JPEG at most [`MAX_SIDE`] pixels on its longer side, for
//! report pages in the console, made within a stated memory budget whatever a photo declares.
//!
//! # Memory budget
//!
//! A small compressed file may declare a huge picture (a 250 KB PNG decodes to 9000 × 9000
//! pixels, 243 MB). So before anything is decoded, the header's dimensions and colour type give
//! what the decode would hold at once — the picture, the decoder's own buffers and copies — and
//! a photo over [`DECODE_BUDGET`] gets no thumbnail ([`ThumbnailError::TooLarge`]). At most
//! [`DECODES_AT_ONCE`] photos are decoded at a time ([`Decodes`]), so thumbnails hold at most
//! `DECODES_AT_ONCE × (DECODE_BUDGET + the photo's bytes + the thumbnail)`: 2 × (64 + 20 + 1)
//! MiB = 170 MiB, however many photos arrive together.

use std::io::Cursor;
use std::sync::Arc;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Longest side of a thumbnail, in pixels.
pub const MAX_SIDE: u32 = 320;

/// Photos decoded at once by this server process (each node of several has its own).
pub const DECODES_AT_ONCE: usize = 2;

/// The most one decode may hold at once, the photo's bytes aside: 64 MiB takes a 16-megapixel
/// phone photo (a baseline JPEG holds 3 bytes a pixel) and a 4000 × 4000 PNG with alpha.
pub const DECODE_BUDGET: u64 = 64 * 1024 * 1024;

/// Longest side decoded, whatever the budget: the decoders' own dimension check.
const MAX_DECODED_SIDE: u32 = 12_000;

/// What a PNG or WebP decoder may keep of a photo's metadata (ICC profile, text, EXIF).
const METADATA_BYTES: u64 = 1024 * 1024;

/// Bytes a decoder may hold per pixel of a row (row and upsampling buffers), over the picture.
const ROW_BYTES_PER_PIXEL: u64 = 64;

/// Bytes a WebP decoder may hold per pixel over the picture: its frame, the animation canvas
/// and the YUV planes of a lossy frame.
const WEBP_BYTES_PER_PIXEL: u64 = 12;

const JPEG_QUALITY: u8 = 80;

#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// Refused from the header: nothing of the picture was allocated.
    #[error(
        "the photo declares {width} × {height} pixels; decoding it would take {need} bytes, over \
         the {DECODE_BUDGET}-byte budget of a thumbnail"
    )]
    TooLarge { width: u32, height: u32, need: u64 },
    #[error("the photo cannot be decoded: {0}")]
    Decode(#[from] image::ImageError),
}

/// The image format of a photo's media type; `None` for attachments that get no thumbnail
/// (audio, PDF).
pub fn photo_format(media_type: &str) -> Option<ImageFormat> {
    match media_type {
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/png" => Some(ImageFormat::Png),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// The turns to decode: at most [`DECODES_AT_ONCE`] at a time. Cheap to clone; clones share
/// the turns.
#[derive(Clone)]
pub struct Decodes(Arc<Semaphore>);

impl Default for Decodes {
    fn default() -> Self {
        Decodes(Arc::new(Semaphore::new(DECODES_AT_ONCE)))
    }
}

impl Decodes {
    /// Waits for a turn to decode; the turn ends when the permit is dropped. Take it before
    /// reading the photo's bytes, so that a decode waiting its turn holds neither them nor a
    /// database connection.
    pub async fn turn(&self) -> OwnedSemaphorePermit {
        self.0
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore of decodes is never closed")
    }
}

/// Reads the photo's header and answers the most its decode would hold at once (the photo's
/// bytes aside), or refuses it if that exceeds [`DECODE_BUDGET`]. `bytes` may be only the start
/// of a photo of `size` bytes, for telling afterwards why a photo has no thumbnail.
pub fn check(bytes: &[u8], size: u64, format: ImageFormat) -> Result<u64, ThumbnailError> {
    checked_decoder(bytes, size, format).map(|(_, need)| need)
}

/// Decodes a photo and encodes its thumbnail as JPEG, or refuses it from the header (see
/// [`check`]). CPU-bound: call it off the async runtime, within a [`Decodes::turn`].
pub fn make(bytes: &[u8], format: ImageFormat) -> Result<Vec<u8>, ThumbnailError> {
    let (decoder, _) = checked_decoder(bytes, bytes.len() as u64, format)?;
    let photo = DynamicImage::from_decoder(decoder)?;
    // `thumbnail` would enlarge a small photo; a small one is only re-encoded.
    let small = if photo.width().max(photo.height()) > MAX_SIDE {
        photo.thumbnail(MAX_SIDE, MAX_SIDE)
    } else {
        photo
    };
    // JPEG has no alpha channel; flatten to RGB before encoding.
    let small = DynamicImage::ImageRgb8(small.to_rgb8());
    let mut out = Vec::new();
    let encoder =
        image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut out), JPEG_QUALITY);
    small.write_with_encoder(encoder)?;
    Ok(out)
}

/// The decoder of `bytes` with its header read, and what decoding will hold, once the header
/// shows that this stays within the budget. Reading a header allocates little: the decoders'
/// limit bounds the metadata they keep, and the JPEG decoder's copy of the file is counted.
fn checked_decoder(
    bytes: &[u8],
    size: u64,
    format: ImageFormat,
) -> Result<(impl ImageDecoder + '_, u64), ThumbnailError> {
    let mut limits = Limits::default();
    limits.max_alloc = Some(METADATA_BYTES);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits.clone());
    let mut decoder = reader.into_decoder()?;
    let (width, height) = decoder.dimensions();
    let need = decode_bytes(&decoder, bytes, size, format);
    if width > MAX_DECODED_SIDE || height > MAX_DECODED_SIDE || need > DECODE_BUDGET {
        return Err(ThumbnailError::TooLarge {
            width,
            height,
            need,
        });
    }
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    decoder.set_limits(limits)?;
    Ok((decoder, need))
}

/// What decoding holds at once, from the header: the picture, row buffers, and what each
/// format's decoder keeps besides.
fn decode_bytes(decoder: &impl ImageDecoder, bytes: &[u8], size: u64, format: ImageFormat) -> u64 {
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    let own = match format {
        // Its copy of the file, what it keeps of the headers, and the coefficients of a
        // progressive picture.
        ImageFormat::Jpeg => {
            let layout = jpeg_layout(bytes).unwrap_or(JpegLayout {
                // Markers that cannot be read: the whole file as headers, and as many full-size
                // components as JPEG allows.
                headers: size,
                coefficients: 8 * (u64::from(width) + 32) * (u64::from(height) + 32),
            });
            size.saturating_add(layout.headers)
                .saturating_add(layout.coefficients)
        }
        ImageFormat::WebP => WEBP_BYTES_PER_PIXEL
            .saturating_mul(pixels)
            .saturating_add(METADATA_BYTES),
        _ => METADATA_BYTES,
    };
    decoder
        .total_bytes()
        .saturating_add(ROW_BYTES_PER_PIXEL * u64::from(width))
        .saturating_add(own)
}

/// What a JPEG decoder keeps besides the picture and its copy of the file.
struct JpegLayout {
    /// Bytes before the first scan: tables and metadata (EXIF, ICC profile) are copied from
    /// them.
    headers: u64,
    /// The coefficients of the whole picture (2 bytes a sample of every component): none for a
    /// sequential JPEG whose first scan carries every component (phone photos), which is
    /// decoded a row of blocks at a time; all of them for a progressive or multi-scan one,
    /// which is refined scan after scan.
    coefficients: u64,
}

/// The layout of a JPEG from its markers up to the first scan; `None` when they cannot be read.
fn jpeg_layout(bytes: &[u8]) -> Option<JpegLayout> {
    struct Frame {
        sequential: bool,
        width: u64,
        height: u64,
        /// Horizontal and vertical sampling factors of each component.
        sampling: Vec<(u64, u64)>,
    }
    let be16 = |at: usize| -> Option<u64> {
        Some(u64::from(u16::from_be_bytes([
            *bytes.get(at)?,
            *bytes.get(at + 1)?,
        ])))
    };
    let mut frame = None;
    // After SOI.
    let mut at = 2;
    loop {
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        // Any number of 0xFF may pad before a marker.
        while *bytes.get(at)? == 0xFF {
            at += 1;
        }
        let marker = *bytes.get(at)?;
        at += 1;
        // Markers without a segment.
        if matches!(marker, 0x01 | 0xD0..=0xD8) {
            continue;
        }
        let len = usize::try_from(be16(at)?).ok()?;
        let segment = bytes.get(at + 2..at + len)?;
        match marker {
            // Start of frame, but DHT, JPG and DAC.
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let components = usize::from(*segment.get(5)?);
                let sampling = segment
                    .get(6..6 + 3 * components)?
                    .chunks_exact(3)
                    .map(|c| (u64::from(c[1] >> 4), u64::from(c[1] & 0x0F)))
                    .collect();
                frame = Some(Frame {
                    sequential: matches!(marker, 0xC0 | 0xC1),
                    height: be16(at + 3)?,
                    width: be16(at + 5)?,
                    sampling,
                });
            }
            // Start of scan: the components it carries come first.
            0xDA => {
                let frame = frame?;
                let headers = at as u64;
                if frame.sequential && usize::from(*segment.first()?) == frame.sampling.len() {
                    return Some(JpegLayout {
                        headers,
                        coefficients: 0,
                    });
                }
                let h_max = frame.sampling.iter().map(|s| s.0).max()?.max(1);
                let v_max = frame.sampling.iter().map(|s| s.1).max()?.max(1);
                let mcus = frame.width.div_ceil(8 * h_max) * frame.height.div_ceil(8 * v_max);
                let coefficients = frame
                    .sampling
                    .iter()
                    .map(|(h, v)| 2 * 64 * mcus * h.max(&1) * v.max(&1))
                    .sum();
                return Some(JpegLayout {
                    headers,
                    coefficients,
                });
            }
            // End of image before any scan.
            0xD9 => return None,
            _ => {}
        }
        at += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbaImage::from_fn(width, height, |x, y| {
            image::Rgba([(x % 256) as u8, (y % 256) as u8, 90, 200])
        });
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .expect("encode");
        out
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 241) as u8, 7])
        });
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
            .expect("encode");
        out
    }

    #[test]
    fn a_large_photo_becomes_a_jpeg_at_most_320_px_keeping_its_shape() {
        let thumb = make(&png(1600, 900), ImageFormat::Png).expect("thumbnail");
        let decoded = image::load_from_memory_with_format(&thumb, ImageFormat::Jpeg).expect("jpeg");
        assert_eq!((decoded.width(), decoded.height()), (320, 180));
    }

    #[test]
    fn bytes_that_are_no_photo_are_an_error_not_a_panic() {
        assert!(make(b"not a photo at all", ImageFormat::Jpeg).is_err());
        let mut cut = png(400, 400);
        cut.truncate(cut.len() / 2);
        assert!(make(&cut, ImageFormat::Png).is_err());
    }

    #[tokio::test]
    async fn no_more_decodes_than_decodes_at_once_hold_a_turn_together() {
        use futures_util::FutureExt;
        let decodes = Decodes::default();
        let mut turns = Vec::new();
        for _ in 0..DECODES_AT_ONCE {
            turns.push(decodes.turn().await);
        }
        // A clone shares the turns: the next one waits until a turn ends.
        let other = decodes.clone();
        assert!(other.turn().now_or_never().is_none());
        turns.pop();
        assert!(other.turn().now_or_never().is_some());
    }

    #[test]
    fn a_sequential_jpeg_keeps_no_coefficients_and_hostile_markers_are_unreadable() {
        let layout = jpeg_layout(&jpeg(64, 48)).expect("layout");
        assert_eq!(layout.coefficients, 0);
        assert!(layout.headers > 0 && layout.headers < 1000);
        // Cut anywhere, or with a segment length running off the end: unreadable, no panic.
        let whole = jpeg(64, 48);
        for end in 0..200.min(whole.len()) {
            let _ = jpeg_layout(&whole[..end]);
        }
        for hostile in [
            &[0xFF, 0xD8, 0xFF, 0xE0, 0xFF][..],
            &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0],
            &[0xFF, 0xD8, 0xFF, 0xE0, 0, 1],
            &[0xFF, 0xD8, 0xFF, 0xD9],
            &[0xFF, 0xD8, 0xFF, 0xDA, 0, 2],
        ] {
            assert!(jpeg_layout(hostile).is_none(), "{hostile:?}");
        }
    }

    #[test]
    fn a_progressive_jpeg_counts_the_coefficients_of_every_component() {
        // SOI, SOF2 of 100 × 50 pixels with Y at 2 × 2 and Cb, Cr at 1 × 1 (4:2:0), SOS of Y.
        let mut progressive = vec![0xFF, 0xD8, 0xFF, 0xC2, 0, 17, 8, 0, 50, 0, 100, 3];
        progressive.extend([1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        progressive.extend([0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0]);
        // 7 × 4 MCUs of 16 × 16 pixels; Y has 4 blocks of 64 samples in each, Cb and Cr one.
        // The headers end where the scan's segment starts.
        let layout = jpeg_layout(&progressive).expect("layout");
        assert_eq!(layout.coefficients, 2 * 64 * 28 * (4 + 1 + 1));
        assert_eq!(layout.headers, 23);
    }
}
