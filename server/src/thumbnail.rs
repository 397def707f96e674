//! Thumbnails of photo attachments: a JPEG at most [`MAX_SIDE`] pixels on its longer side, for
//! report pages in the console.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};

/// Longest side of a thumbnail, in pixels.
pub const MAX_SIDE: u32 = 320;

/// Largest photo decoded, in pixels per side and in bytes of memory: a small compressed file may
/// declare a huge picture, and decoding must not take the server down.
const MAX_DECODED_SIDE: u32 = 12_000;
const MAX_DECODED_BYTES: u64 = 256 * 1024 * 1024;

const JPEG_QUALITY: u8 = 80;

#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
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

/// Decodes a photo and encodes its thumbnail as JPEG. CPU-bound: call it off the async runtime.
pub fn make(bytes: &[u8], format: ImageFormat) -> Result<Vec<u8>, ThumbnailError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let photo = reader.decode()?;
    // `thumbnail` would enlarge a small photo; a small one is only re-encoded.
    let small = if photo.width().max(photo.height()) > MAX_SIDE {
        photo.thumbnail(MAX_SIDE, MAX_SIDE)
    } else {
        photo
    };
    // JPEG has no alpha channel; flatten to RGB before encoding.
    let small = image::DynamicImage::ImageRgb8(small.to_rgb8());
    let mut out = Vec::new();
    let encoder =
        image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut out), JPEG_QUALITY);
    small.write_with_encoder(encoder)?;
    Ok(out)
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
}
