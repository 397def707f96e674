//! Thumbnails within their memory budget: a photo's header is read, and a photo too large for
//! the budget refused, before anything of its picture is allocated; a decode holds no more than
//! its header said; hostile bytes are refused without a panic. A counting allocator measures
//! what each decode holds on the thread that runs it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;

use gridsync_server::thumbnail::{self, DECODE_BUDGET, ThumbnailError};
use image::{ImageBuffer, ImageFormat, Rgb, Rgba};

struct Counting;

thread_local! {
    /// Bytes this thread has allocated and not freed, and the most at any time since reset.
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn note(delta: i64) {
    // `try_with`: a thread being torn down still allocates and frees.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is passed on to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// What `f` returns, and the most it held allocated at once on this thread.
fn peak_during<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let r = f();
    let peak = PEAK.with(Cell::get) - start;
    (r, peak.max(0) as u64)
}

const MIB: u64 = 1024 * 1024;

/// What making a thumbnail holds besides the decode: the small picture, its RGB copy and the
/// JPEG encoder's buffers.
const THUMBNAIL_BYTES: u64 = MIB;

fn encode<P, C>(img: &ImageBuffer<P, C>, format: ImageFormat) -> Vec<u8>
where
    P: image::Pixel + image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format)
        .expect("encode");
    out
}

fn rgb(width: u32, height: u32) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    })
}

fn rgba(width: u32, height: u32) -> ImageBuffer<Rgba<u8>, Vec<u8>> {
    ImageBuffer::from_fn(width, height, |x, y| {
        Rgba([(x % 251) as u8, (y % 241) as u8, 90, (x ^ y) as u8])
    })
}

/// CRC-32 of PNG chunks (ISO 3309), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `png` with its IHDR claiming `width` × `height` pixels (the data is unchanged).
fn png_claiming(mut png: Vec<u8>, width: u32, height: u32) -> Vec<u8> {
    // Signature (8), IHDR length (4) and type (4), then width and height.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// `jpeg` with its frame header claiming `width` × `height` pixels.
fn jpeg_claiming(mut jpeg: Vec<u8>, width: u16, height: u16) -> Vec<u8> {
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2])
        .expect("a frame header");
    // Marker (2), length (2), precision (1), then height and width.
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    jpeg
}

/// A lossless `webp` with its header claiming `width` × `height` pixels (at most 16383).
fn webp_claiming(mut webp: Vec<u8>, width: u32, height: u32) -> Vec<u8> {
    let vp8l = webp
        .windows(4)
        .position(|w| w == b"VP8L")
        .expect("a lossless chunk");
    // Fourcc (4), size (4), signature 0x2f (1), then 14 bits of width - 1 and of height - 1.
    let at = vp8l + 9;
    let bits = u32::from_le_bytes(webp[at..at + 4].try_into().expect("4 bytes"));
    let bits = (bits & !0x0FFF_FFFF) | (width - 1) | ((height - 1) << 14);
    webp[at..at + 4].copy_from_slice(&bits.to_le_bytes());
    // An extended file names the canvas too: fourcc, size, flags (4), then 24 bits of each.
    if let Some(vp8x) = webp.windows(4).position(|w| w == b"VP8X") {
        let at = vp8x + 12;
        webp[at..at + 3].copy_from_slice(&(width - 1).to_le_bytes()[..3]);
        webp[at + 3..at + 6].copy_from_slice(&(height - 1).to_le_bytes()[..3]);
    }
    webp
}

const PROGRESSIVE: &[u8] = include_bytes!("fixtures/progressive-800x600-444.jpg");

#[test]
fn headers_declaring_huge_pictures_are_refused_before_anything_of_them_is_allocated() {
    let png = encode(&rgb(4, 4), ImageFormat::Png);
    let jpeg = encode(&rgb(16, 16), ImageFormat::Jpeg);
    let webp = encode(&rgba(4, 4), ImageFormat::WebP);
    let cases = [
        // The finding: a small PNG that decodes to 9000 × 9000, 243 MB of RGB.
        (png_claiming(png.clone(), 9_000, 9_000), ImageFormat::Png),
        (png_claiming(png, 100_000, 100_000), ImageFormat::Png),
        (
            jpeg_claiming(jpeg.clone(), 11_000, 11_000),
            ImageFormat::Jpeg,
        ),
        (jpeg_claiming(jpeg, 60_000, 60_000), ImageFormat::Jpeg),
        (webp_claiming(webp.clone(), 9_000, 9_000), ImageFormat::WebP),
        (webp_claiming(webp, 16_383, 16_383), ImageFormat::WebP),
    ];
    for (bytes, format) in cases {
        let (made, peak) = peak_during(|| thumbnail::make(&bytes, format));
        match made {
            Err(ThumbnailError::TooLarge {
                width,
                height,
                need,
            }) => {
                assert!(
                    width >= 9_000 && height >= 9_000,
                    "{format:?}: {width}×{height}"
                );
                assert!(need > DECODE_BUDGET, "{format:?}: {need}");
            }
            other => panic!("{format:?} of {} bytes: {other:?}", bytes.len()),
        }
        assert!(
            peak < MIB,
            "{format:?}: refusing the header took {peak} bytes"
        );
        let size = bytes.len() as u64;
        assert!(matches!(
            thumbnail::check(&bytes, size, format),
            Err(ThumbnailError::TooLarge { .. })
        ));
    }
}

#[test]
fn a_decode_holds_no_more_than_its_header_said() {
    let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(1200, 900, |x, y| {
        Rgb([(x * 50) as u16, (y * 70) as u16, ((x + y) * 13) as u16])
    });
    let cases = [
        (
            "PNG RGBA",
            encode(&rgba(2000, 1500), ImageFormat::Png),
            ImageFormat::Png,
        ),
        (
            "PNG RGB16",
            encode(&rgb16, ImageFormat::Png),
            ImageFormat::Png,
        ),
        (
            "baseline JPEG",
            encode(&rgb(2000, 1500), ImageFormat::Jpeg),
            ImageFormat::Jpeg,
        ),
        ("progressive JPEG", PROGRESSIVE.to_vec(), ImageFormat::Jpeg),
        (
            "WebP RGBA",
            encode(&rgba(1000, 800), ImageFormat::WebP),
            ImageFormat::WebP,
        ),
        (
            "WebP RGB",
            encode(&rgb(1000, 800), ImageFormat::WebP),
            ImageFormat::WebP,
        ),
    ];
    for (what, bytes, format) in cases {
        let need = thumbnail::check(&bytes, bytes.len() as u64, format).expect(what);
        let (made, peak) = peak_during(|| thumbnail::make(&bytes, format));
        made.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            peak <= need + THUMBNAIL_BYTES,
            "{what}: the header said {need} bytes; the decode held {peak}"
        );
    }
}

#[test]
fn the_budget_takes_phone_photos_and_refuses_what_exceeds_it() {
    let jpeg = encode(&rgb(16, 16), ImageFormat::Jpeg);
    let png = encode(&rgba(4, 4), ImageFormat::Png);
    let fits = |bytes: &[u8], format| thumbnail::check(bytes, bytes.len() as u64, format).is_ok();
    // A 16-megapixel phone photo, and a 4000 × 4000 PNG with alpha.
    assert!(fits(
        &jpeg_claiming(jpeg.clone(), 4608, 3456),
        ImageFormat::Jpeg
    ));
    assert!(fits(
        &png_claiming(png.clone(), 4000, 4000),
        ImageFormat::Png
    ));
    // 4096 × 4096 with alpha is the budget's picture alone, without the decoder's rows.
    assert!(!fits(&png_claiming(png, 4096, 4096), ImageFormat::Png));
    // The same 16 megapixels progressive: its coefficients (2 bytes a sample) do not fit.
    assert!(!fits(
        &jpeg_claiming(PROGRESSIVE.to_vec(), 4608, 3456),
        ImageFormat::Jpeg
    ));
}

#[test]
fn hostile_bytes_are_refused_or_decoded_within_the_budget_never_with_a_panic() {
    let png = encode(&rgba(300, 200), ImageFormat::Png);
    let jpeg = encode(&rgb(300, 200), ImageFormat::Jpeg);
    let webp = encode(&rgba(300, 200), ImageFormat::WebP);
    // Compresses about 1000 to 1: 12 MB of black in a few kilobytes.
    let black = encode(
        &ImageBuffer::<Rgb<u8>, _>::new(2000, 2000),
        ImageFormat::Png,
    );
    let mut inputs = vec![
        Vec::new(),
        b"not a photo at all".to_vec(),
        (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
        // A bomb claiming a small picture with far more data than it needs...
        png_claiming(black.clone(), 10, 10),
        // ...or a picture within the budget whose data stops short.
        png_claiming(black[..black.len() / 3].to_vec(), 3000, 3000),
        PROGRESSIVE[..PROGRESSIVE.len() / 2].to_vec(),
    ];
    for whole in [&png, &jpeg, &webp, &black] {
        for cut in [1, 8, 16, 24, 33, 40, 64, 100, 200] {
            inputs.push(whole[..cut.min(whole.len())].to_vec());
        }
        inputs.push(whole[..whole.len() / 2].to_vec());
        inputs.push(whole.clone());
    }
    for bytes in &inputs {
        for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::WebP] {
            let (_, peak) = peak_during(|| thumbnail::make(bytes, format));
            assert!(
                peak <= DECODE_BUDGET + THUMBNAIL_BYTES,
                "{format:?} of {} bytes held {peak}",
                bytes.len()
            );
            let _ = thumbnail::check(bytes, bytes.len() as u64, format);
        }
    }
}
