//! An uploaded avatar file made safe: decoded (not sniffed) with limits against decompression
//! bombs, turned upright by its EXIF orientation, scaled down to the configured bound and
//! re-encoded. The stored bytes are the encoder's, so no metadata of the upload (EXIF GPS,
//! comments, ICC profiles, trailing data) survives. CPU-bound and memory-hungry: callers run it
//! with `spawn_blocking` under the [`super::gate`] bound, weighed by [`cost`].

//!
//! Decoding needs the `images` feature; a function built without it never processes a picture
//! (`Endpoint::needs`), and its `process` refuses every file.

#[cfg(feature = "images")]
use std::io::Cursor;

#[cfg(feature = "images")]
use image::codecs::jpeg::JpegEncoder;
#[cfg(feature = "images")]
use image::codecs::png::PngEncoder;
#[cfg(feature = "images")]
use image::imageops::FilterType;
#[cfg(feature = "images")]
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

pub const INVALID_IMAGE: &str =
    "Upload a valid image. The file you uploaded was either not an image or a corrupted image.";
pub const EMPTY_FILE: &str = "The submitted file is empty.";

/// No side of an image to decode may be longer than this (a 100000×100000 PNG is a few bytes).
pub const MAX_DECODE_SIDE: u32 = 12_000;
/// Nor may it have more pixels than this (a 40-megapixel phone photo passes).
pub const MAX_DECODE_PIXELS: u64 = 50_000_000;
/// The decoder's own allocation cap, a backstop behind the two checks above (a 50-megapixel RGB
/// image takes 150 MB decoded; 16-bit or with alpha, more: those are refused as too many pixels).
pub const MAX_DECODE_ALLOC: u64 = 256 * 1024 * 1024;
#[cfg(feature = "images")]
const JPEG_QUALITY: u8 = 85;
/// What encoding the (scaled) result takes, roughly, whatever the image.
#[cfg(feature = "images")]
const ENCODING_COST: u64 = 4 * 1024 * 1024;

/// What an avatar may be (from the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvatarBounds {
    pub max_bytes: usize,
    pub max_side: u32,
}

impl From<&crate::config::MediaConfig> for AvatarBounds {
    fn from(media: &crate::config::MediaConfig) -> Self {
        Self { max_bytes: media.avatar_max_bytes, max_side: media.avatar_max_side }
    }
}

/// Why an upload is refused; each is a 400 under `avatar`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PictureProblem {
    Empty,
    TooLarge { size: usize, max: usize },
    TooManyPixels,
    Invalid,
}

impl PictureProblem {
    pub fn message(&self) -> String {
        match self {
            PictureProblem::Empty => EMPTY_FILE.into(),
            PictureProblem::TooLarge { size, max } => {
                format!("Ensure this file has no more than {max} bytes (it has {size}).")
            }
            PictureProblem::TooManyPixels => format!(
                "Ensure this image has no more than {MAX_DECODE_SIDE} pixels on a side and {MAX_DECODE_PIXELS} pixels in all."
            ),
            PictureProblem::Invalid => INVALID_IMAGE.into(),
        }
    }
}

/// The re-encoded image, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    pub bytes: Vec<u8>,
    pub extension: &'static str,
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Checks the size, decodes PNG, JPEG, GIF (first frame) or WebP within the limits, applies the
/// EXIF orientation, scales the longer side down to `bounds.max_side`, and re-encodes: JPEG stays
/// JPEG (quality 85), everything else becomes PNG (keeping transparency).
pub fn process(bytes: &[u8], bounds: AvatarBounds) -> Result<Picture, PictureProblem> {
    if bytes.is_empty() {
        return Err(PictureProblem::Empty);
    }
    if bytes.len() > bounds.max_bytes {
        return Err(PictureProblem::TooLarge { size: bytes.len(), max: bounds.max_bytes });
    }
    decode_and_encode(bytes, bounds)
}

#[cfg(not(feature = "images"))]
fn decode_and_encode(_bytes: &[u8], _bounds: AvatarBounds) -> Result<Picture, PictureProblem> {
    tracing::error!("an avatar reached a build without the `images` feature");
    Err(PictureProblem::Invalid)
}

#[cfg(feature = "images")]
fn decode_and_encode(bytes: &[u8], bounds: AvatarBounds) -> Result<Picture, PictureProblem> {
    let (mut decoder, format) = open(bytes)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_DECODE_PIXELS {
        return Err(PictureProblem::TooManyPixels);
    }
    let orientation = decoder.orientation().ok();
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_problem)?;
    image = scale_down(image, bounds.max_side);
    // Turned after scaling (the bound is a square, so the order does not change the result): a
    // turn copies the whole image, better the small one.
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    encode(image, format == ImageFormat::Jpeg)
}

/// Scales the longer side down to `max_side`. A large image first goes to twice the bound by area
/// averaging (integer work, no copy bigger than the result) and only then through the
/// Catmull-Rom filter, whose first pass would otherwise hold the full width in 16-byte float
/// pixels (a 7000-pixel-wide image: 115 MB on top of the decoded 150 MB).
#[cfg(feature = "images")]
fn scale_down(mut image: DynamicImage, max_side: u32) -> DynamicImage {
    let pre_shrink_side = max_side.saturating_mul(2);
    if image.width().max(image.height()) > pre_shrink_side {
        image = image.thumbnail(pre_shrink_side, pre_shrink_side);
    }
    if image.width().max(image.height()) > max_side {
        image = image.resize(max_side, max_side, FilterType::CatmullRom);
    }
    image
}

/// The memory, in bytes, that processing `bytes` will need at its peak, read from the image's
/// header without decoding it: the decoded pixels, plus the scaled copies and the encoder's
/// output, plus (progressive JPEG) the decoder's coefficients. `Err` for a file that `process`
/// refuses anyway (too big, no image, too many pixels): no need to wait for the gate then.
pub fn cost(bytes: &[u8], bounds: AvatarBounds) -> Result<u64, PictureProblem> {
    if bytes.is_empty() {
        return Err(PictureProblem::Empty);
    }
    if bytes.len() > bounds.max_bytes {
        return Err(PictureProblem::TooLarge { size: bytes.len(), max: bounds.max_bytes });
    }
    decoded_cost(bytes, bounds)
}

#[cfg(not(feature = "images"))]
fn decoded_cost(_bytes: &[u8], _bounds: AvatarBounds) -> Result<u64, PictureProblem> {
    Err(PictureProblem::Invalid)
}

#[cfg(feature = "images")]
fn decoded_cost(bytes: &[u8], bounds: AvatarBounds) -> Result<u64, PictureProblem> {
    let (decoder, format) = open(bytes)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_DECODE_PIXELS {
        return Err(PictureProblem::TooManyPixels);
    }
    let decoded = decoder.total_bytes();
    if decoded > MAX_DECODE_ALLOC {
        return Err(PictureProblem::TooManyPixels);
    }
    // zune-jpeg keeps every coefficient of a progressive JPEG (two bytes a sample) until the last
    // scan; a baseline one needs less, but telling them apart is not worth a parser here.
    let decoder_work = if format == ImageFormat::Jpeg { decoded * 2 } else { 0 };
    // Beside the decoded image, the pre-shrunk copy (at most twice the bound on a side); after
    // the decoded image is gone, the filter's float pass (16 bytes a pixel, twice the bound by the
    // bound): either way no more than 8 bytes for each pixel of a square of twice the bound. Then
    // the small result and the encoder's output.
    let side = u64::from(bounds.max_side.saturating_mul(2));
    let scaling = (side * side * 8).min(decoded);
    Ok(decoded + decoder_work + scaling + ENCODING_COST)
}

/// The decoder of a supported format, with the limits set.
#[cfg(feature = "images")]
fn open(bytes: &[u8]) -> Result<(Box<dyn ImageDecoder + '_>, ImageFormat), PictureProblem> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|_| PictureProblem::Invalid)?;
    let format = match reader.format() {
        Some(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP)) => f,
        _ => return Err(PictureProblem::Invalid),
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(decode_problem)?;
    Ok((Box::new(decoder), format))
}

#[cfg(feature = "images")]
fn decode_problem(e: image::ImageError) -> PictureProblem {
    match e {
        image::ImageError::Limits(_) => PictureProblem::TooManyPixels,
        _ => PictureProblem::Invalid,
    }
}

#[cfg(feature = "images")]
fn encode(image: DynamicImage, as_jpeg: bool) -> Result<Picture, PictureProblem> {
    let (width, height) = (image.width(), image.height());
    let mut bytes = Vec::new();
    let encoded = if as_jpeg && !image.color().has_alpha() {
        let image = match image {
            DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => image,
            other => DynamicImage::ImageRgb8(other.to_rgb8()),
        };
        image.write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)).map(|_| ("jpg", "image/jpeg"))
    } else {
        // The PNG encoder itself, not `write_to(.., ImageFormat::Png)`: that dispatches on the format
        // at run time and so links every enabled encoder (GIF, WebP) into the function.
        image.write_with_encoder(PngEncoder::new(&mut bytes)).map(|_| ("png", "image/png"))
    };
    // Encoding a decoded image fails only on a bug; to the client it is still not a usable image.
    let (extension, content_type) = encoded.map_err(|e| {
        tracing::error!(error = %e, "re-encoding an avatar failed");
        PictureProblem::Invalid
    })?;
    Ok(Picture { bytes, extension, content_type, width, height })
}

#[cfg(all(test, feature = "images"))]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    const BOUNDS: AvatarBounds = AvatarBounds { max_bytes: 5 * 1024 * 1024, max_side: 1024 };

    fn encoded(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        image.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    fn gradient(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 128])))
    }

    #[test]
    fn every_supported_format_is_decoded_and_re_encoded() {
        let rgba = DynamicImage::ImageRgba8(RgbaImage::from_pixel(40, 30, Rgba([10, 20, 30, 128])));
        for (image, format, extension) in [
            (gradient(40, 30), ImageFormat::Png, "png"),
            (gradient(40, 30), ImageFormat::Jpeg, "jpg"),
            (gradient(40, 30), ImageFormat::Gif, "png"),
            (rgba.clone(), ImageFormat::WebP, "png"),
            (rgba, ImageFormat::Png, "png"),
        ] {
            let picture = process(&encoded(image, format), BOUNDS).unwrap_or_else(|p| panic!("{format:?}: {p:?}"));
            assert_eq!((picture.extension, picture.width, picture.height), (extension, 40, 30), "{format:?}");
            let back = image::load_from_memory(&picture.bytes).unwrap();
            assert_eq!((back.width(), back.height()), (40, 30));
        }
    }

    #[test]
    fn large_images_are_scaled_to_the_bound_keeping_the_aspect_ratio() {
        let picture = process(&encoded(gradient(2000, 1000), ImageFormat::Png), BOUNDS).unwrap();
        assert_eq!((picture.width, picture.height), (1024, 512));
        let small = AvatarBounds { max_side: 100, ..BOUNDS };
        let picture = process(&encoded(gradient(300, 600), ImageFormat::Jpeg), small).unwrap();
        assert_eq!((picture.width, picture.height), (50, 100));
    }

    #[test]
    fn empty_too_large_and_not_images_are_refused() {
        assert_eq!(process(b"", BOUNDS), Err(PictureProblem::Empty));
        let png = encoded(gradient(10, 10), ImageFormat::Png);
        let tight = AvatarBounds { max_bytes: png.len() - 1, ..BOUNDS };
        assert_eq!(process(&png, tight), Err(PictureProblem::TooLarge { size: png.len(), max: png.len() - 1 }));
        assert_eq!(process(b"just some text, named .png", BOUNDS), Err(PictureProblem::Invalid));
        assert_eq!(process(&png[..png.len() / 2], BOUNDS), Err(PictureProblem::Invalid), "truncated");
        // A format the service does not take (BMP header).
        assert_eq!(
            process(b"BM\x1e\0\0\0\0\0\0\0\x1a\0\0\0\x0c\0\0\0\x01\0\x01\0\x01\0\x18\0\0\0\xff\0", BOUNDS),
            Err(PictureProblem::Invalid)
        );
    }

    /// A well-formed PNG of a few dozen bytes declaring `w`×`h`: one short IDAT (a zlib stream
    /// of five zero bytes) where the header promises gigabytes of pixels.
    fn png_declaring(w: u32, h: u32) -> Vec<u8> {
        fn chunk(png: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
            let mut body = kind.to_vec();
            body.extend_from_slice(data);
            png.extend_from_slice(&(data.len() as u32).to_be_bytes());
            png.extend_from_slice(&body);
            png.extend_from_slice(&crc32(&body).to_be_bytes());
        }
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        // zlib: header, one final stored block of 5 zero bytes, Adler-32 of those bytes.
        let idat = [0x78, 0x01, 0x01, 0x05, 0x00, 0xfa, 0xff, 0, 0, 0, 0, 0, 0x00, 0x05, 0x00, 0x01];
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(&mut png, b"IDAT", &idat);
        chunk(&mut png, b"IEND", &[]);
        png
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn the_cost_is_read_from_the_header_and_grows_with_the_pixels() {
        let small = cost(&encoded(gradient(40, 30), ImageFormat::Png), BOUNDS).unwrap();
        let large = cost(&encoded(gradient(3000, 2000), ImageFormat::Png), BOUNDS).unwrap();
        assert!(large > 3000 * 2000 * 3 && large > small, "{small} {large}");
        let jpeg = cost(&encoded(gradient(3000, 2000), ImageFormat::Jpeg), BOUNDS).unwrap();
        assert!(jpeg > large, "a JPEG's coefficients count too: {jpeg} {large}");
        assert_eq!(cost(&png_declaring(10_000, 10_000), BOUNDS), Err(PictureProblem::TooManyPixels));
        assert_eq!(cost(b"", BOUNDS), Err(PictureProblem::Empty));
        assert_eq!(cost(b"not an image", BOUNDS), Err(PictureProblem::Invalid));
    }

    #[test]
    fn decompression_bombs_are_refused_before_decoding() {
        assert_eq!(process(&png_declaring(100_000, 100_000), BOUNDS), Err(PictureProblem::TooManyPixels));
        // Each side within the limit, too many pixels in all.
        assert_eq!(process(&png_declaring(10_000, 10_000), BOUNDS), Err(PictureProblem::TooManyPixels));
        // A sane header with no data is merely corrupt.
        assert_eq!(process(&png_declaring(100, 100), BOUNDS), Err(PictureProblem::Invalid));
    }
}
