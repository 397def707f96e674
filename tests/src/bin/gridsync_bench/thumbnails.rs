//! Thumbnails, the memory of security finding 8: a grid worker uploads N photos at once, each a
//! PNG that compresses about 1000 to 1 (a 9000 × 9000 one is 236 KB and decodes to 243 MB),
//! and the office asks for all their thumbnails at once. Reports the server's peak resident
//! memory (VmHWM) before the uploads and after the thumbnails, and what each request answered.
//!
//! ```text
//! gridsync-bench thumbnails --backend sqlite --photos 3
//! gridsync-bench thumbnails --backend sqlite --photos 10 --width 4000 --height 4000 --alpha
//! ```

use std::time::Instant;

use anyhow::{Context, bail};
use gridsync_core::DocId;
use gridsync_core::attachment::Attachment;
use gridsync_core::report::Editor;
use gridsync_fixtures::phone::Phone;
use gridsync_fixtures::work::new_dispute;
use serde_json::{Value, json};
use sha2::Digest;

use crate::district::{Backend, District, OFFICE, PASSWORD, grid, worker};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Photos uploaded at once, all on one report.
    #[arg(long, default_value_t = 3)]
    pub photos: usize,
    /// Width of each photo, in pixels.
    #[arg(long, default_value_t = 9000)]
    pub width: u32,
    /// Height of each photo, in pixels.
    #[arg(long, default_value_t = 9000)]
    pub height: u32,
    /// Photos with an alpha channel (RGBA, 4 bytes a pixel) instead of RGB.
    #[arg(long)]
    pub alpha: bool,
}

pub async fn run(backend: Backend, args: &Args) -> anyhow::Result<Value> {
    let district = District::start(backend, 1).await?;
    let base = district.server.base.clone();
    let photos: Vec<Vec<u8>> = (0..args.photos)
        .map(|i| black_png(args.width, args.height, args.alpha, i))
        .collect();

    let mut phone = Phone::login(&base, &worker(0), PASSWORD, "phone-0").await?;
    let mut doc = new_dispute(&grid(0), &phone.user_id, 1_000_000);
    let editor = Editor::new(&phone.user_id, 1_000_001);
    for (i, photo) in photos.iter().enumerate() {
        doc.attach(
            Attachment {
                sha256: hex::encode(sha2::Sha256::digest(photo)),
                media_type: "image/png".into(),
                size: photo.len() as u64,
                name: format!("IMG_{i:04}.png"),
                field: "site_photos".into(),
                entry: None,
                taken_at: "2026-11-03T10:00:00Z".into(),
                location: None,
                attached_by: String::new(),
            },
            &editor,
        )?;
    }
    let id = doc.id();
    phone.replica.insert(doc);
    phone.push().await?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(1200))
        .build()?;
    let uploader = token(&http, &base, &worker(0), "phone-0-uploads").await?;
    let office = token(&http, &base, OFFICE, "office-pc").await?;
    let idle = district.server_peak_memory()?;

    let started = Instant::now();
    let uploads: Vec<_> = photos
        .into_iter()
        .map(|photo| {
            let (http, base, token) = (http.clone(), base.clone(), uploader.clone());
            tokio::spawn(async move { upload(&http, &base, &token, id, photo).await })
        })
        .collect();
    let mut hashes = Vec::new();
    let mut upload_statuses = Vec::new();
    for task in uploads {
        let (hash, status) = task.await??;
        hashes.push(hash);
        upload_statuses.push(status);
    }
    let upload_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let thumbnails: Vec<_> = hashes
        .into_iter()
        .map(|hash| {
            let (http, token) = (http.clone(), office.clone());
            let url = format!("{base}/api/v1/reports/{id}/attachments/{hash}/thumbnail");
            tokio::spawn(async move {
                let answer = http.get(url).bearer_auth(token).send().await?;
                let status = answer.status().as_u16();
                answer.bytes().await?;
                anyhow::Ok(status)
            })
        })
        .collect();
    let mut thumbnail_statuses = Vec::new();
    for task in thumbnails {
        thumbnail_statuses.push(task.await??);
    }
    let thumbnail_secs = started.elapsed().as_secs_f64();
    let peak = district.server_peak_memory()?;

    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    Ok(json!({
        "workload": "thumbnails",
        "backend": backend,
        "server": gridsync_e2e::server_binary(),
        "photos": args.photos,
        "pixels": format!("{}x{}", args.width, args.height),
        "channels": if args.alpha { 4 } else { 3 },
        "png_bytes_each": black_png(args.width, args.height, args.alpha, 0).len(),
        "decoded_mib_each": mib(u64::from(args.width) * u64::from(args.height)
            * if args.alpha { 4 } else { 3 }),
        "upload_statuses": upload_statuses,
        "upload_seconds": upload_secs,
        "thumbnail_statuses": thumbnail_statuses,
        "thumbnail_seconds": thumbnail_secs,
        "idle_peak_rss_mib": mib(idle),
        "peak_rss_mib": mib(peak),
        "added_mib": mib(peak.saturating_sub(idle)),
    }))
}

/// Logs `user` in as `device` and answers the access token.
async fn token(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    device: &str,
) -> anyhow::Result<String> {
    let answer = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({
            "username": user, "password": PASSWORD,
            "device_id": device, "device_name": "gridsync-bench",
        }))
        .send()
        .await?;
    if !answer.status().is_success() {
        bail!("login {user}: {}", answer.status());
    }
    let tokens: Value = answer.json().await?;
    Ok(tokens["access_token"]
        .as_str()
        .context("no access token")?
        .to_owned())
}

/// Uploads `photo` whole in one PUT; answers its hash and the status.
async fn upload(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: DocId,
    photo: Vec<u8>,
) -> anyhow::Result<(String, u16)> {
    let hash = hex::encode(sha2::Sha256::digest(&photo));
    let answer = http
        .put(format!("{base}/api/v1/reports/{id}/attachments/{hash}"))
        .bearer_auth(token)
        .header("content-type", "image/png")
        .body(photo)
        .send()
        .await?;
    let status = answer.status().as_u16();
    let body = answer.bytes().await?;
    if !(200..300).contains(&status) {
        bail!("upload {hash}: {status} {}", String::from_utf8_lossy(&body));
    }
    Ok((hash, status))
}

/// A black PNG of `width` × `height` pixels, its data one deflate block of matches 258 bytes
/// long that cost 2 bits each (the best deflate does: about 1032 to 1). `n` goes into a text
/// chunk, so that each photo has its own hash.
fn black_png(width: u32, height: u32, alpha: bool, n: usize) -> Vec<u8> {
    let channels = if alpha { 4 } else { 3 };
    // Every row is its filter byte (0, none) and its pixels: all zero.
    let raw = u64::from(height) * (1 + u64::from(width) * channels);
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    // Bit depth 8; colour type RGB (2) or RGBA (6); deflate, adaptive filters, no interlace.
    ihdr.extend([8, if alpha { 6 } else { 2 }, 0, 0, 0]);
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"tEXt", format!("Comment\0photo {n}").as_bytes());
    chunk(&mut png, b"IDAT", &zlib_zeros(raw));
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend((data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend(kind);
    png.extend(data);
    let crc = crc32(&png[start..]);
    png.extend(crc.to_be_bytes());
}

/// CRC-32 (ISO 3309) of a PNG chunk's type and data, bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Deflate's bits, least significant first.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, n: u32) {
        self.acc |= value << self.n;
        self.n += n;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, which deflate writes most significant bit first.
    fn code(&mut self, code: u64, n: u32) {
        let reversed = (0..n).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
        self.put(reversed, n);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A zlib stream of `len` zero bytes: one dynamic-Huffman block in which the literal 0 and the
/// end of block take 2 bits, a match of 258 bytes 1 bit, and distances 0 and 1 a bit each.
fn zlib_zeros(len: u64) -> Vec<u8> {
    let mut bits = Bits::default();
    // Final block, dynamic Huffman codes.
    bits.put(1, 1);
    bits.put(2, 2);
    // 286 literal/length codes, 2 distance codes, 18 code-length codes.
    bits.put(286 - 257, 5);
    bits.put(2 - 1, 5);
    bits.put(18 - 4, 4);
    // Code-length code lengths in deflate's order 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12,
    // 3, 13, 2, 14, 1: symbol 18 (a run of zeros) takes 1 bit, lengths 1 and 2 two bits each.
    for length in [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2] {
        bits.put(length, 3);
    }
    // Canonical codes of the code-length code: 18 -> 0, 1 -> 10, 2 -> 11.
    let (run, one, two) = ((0, 1), (0b10, 2), (0b11, 2));
    let zeros = |bits: &mut Bits, count: u64| {
        bits.code(run.0, run.1);
        bits.put(count - 11, 7);
    };
    // Literal/length lengths: 0 -> 2, 1..=255 -> none, 256 -> 2, 257..=284 -> none, 285 -> 1;
    // then both distance codes 1.
    bits.code(two.0, two.1);
    zeros(&mut bits, 138);
    zeros(&mut bits, 117);
    bits.code(two.0, two.1);
    zeros(&mut bits, 28);
    for _ in 0..3 {
        bits.code(one.0, one.1);
    }
    // Canonical literal/length codes: 285 -> 0, 0 -> 10, 256 -> 11; distance 0 -> 0.
    let literal_zero = |bits: &mut Bits| bits.code(0b10, 2);
    literal_zero(&mut bits);
    let matches = (len - 1) / 258;
    for _ in 0..matches {
        bits.code(0, 1);
        bits.code(0, 1);
    }
    for _ in 0..(len - 1) % 258 {
        literal_zero(&mut bits);
    }
    bits.code(0b11, 2);
    // zlib: deflate with a 32 KiB window, no dictionary; Adler-32 of zeros is 1 and the length.
    let mut out = vec![0x78, 0x01];
    out.extend(bits.finish());
    let adler = ((len % 65_521) << 16) | 1;
    out.extend((adler as u32).to_be_bytes());
    out
}
