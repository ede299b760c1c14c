//! The IDX format of (Fashion-)MNIST, plain or gzip-compressed.
//!
//! The header is checked against the file length *before* the payload is allocated: a corrupt
//! header claiming 4 billion images must fail, not try to allocate gigabytes. For gzip files the
//! uncompressed length comes from the gzip trailer (ISIZE), and reading stops at the size the
//! header claims.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::GzDecoder;

use super::{DataError, Dataset, Targets};

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// Dimensions from the header.
    pub dims: Vec<usize>,
    /// The payload, row-major.
    pub data: Vec<u8>,
}

/// Reads an unsigned-byte IDX file of rank `rank`, gzip-compressed if its name ends in `.gz`.
pub fn read_idx(path: &Path, rank: usize) -> Result<IdxArray, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        cause: source,
    };
    let bad = |message: String| DataError::Idx {
        path: path.to_path_buf(),
        message,
    };
    let mut file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let gz = path.extension().is_some_and(|e| e == "gz");
    let stream_len = stream_len(&mut file, file_len, gz, &io, &bad)?;
    let mut reader: Box<dyn Read> = if gz {
        Box::new(GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let dims = read_header(&mut reader, rank, &bad)?;
    let payload = payload_len(&dims, rank, stream_len, &bad)?;
    let data = read_payload(&mut reader, payload, &bad)?;
    Ok(IdxArray { dims, data })
}

/// Total bytes the decoded stream holds, known before decoding so that a header can be checked
/// against it: the file length, or for gzip the trailer's ISIZE (the file is rewound after).
fn stream_len(
    file: &mut File,
    file_len: u64,
    gz: bool,
    io: &impl Fn(std::io::Error) -> DataError,
    bad: &impl Fn(String) -> DataError,
) -> Result<u64, DataError> {
    if !gz {
        return Ok(file_len);
    }
    if file_len < 18 {
        return Err(bad("too short for a gzip file".into()));
    }
    file.seek(SeekFrom::End(-4)).map_err(io)?;
    let mut isize = [0u8; 4];
    file.read_exact(&mut isize).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok(u64::from(u32::from_le_bytes(isize)))
}

/// The dimensions from the header, after the magic number has shown that this is an
/// unsigned-byte array of the expected rank: a wrong file fails here, with what it holds.
fn read_header(
    reader: &mut impl Read,
    rank: usize,
    bad: &impl Fn(String) -> DataError,
) -> Result<Vec<usize>, DataError> {
    let mut magic = [0u8; 4];
    reader
        .read_exact(&mut magic)
        .map_err(|e| bad(format!("cannot read the magic number ({e})")))?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(bad(format!(
            "magic number starts with {:02x} {:02x}, expected 00 00",
            magic[0], magic[1]
        )));
    }
    if magic[2] != 0x08 {
        return Err(bad(format!(
            "element type 0x{:02x}, expected 0x08 (unsigned byte)",
            magic[2]
        )));
    }
    if usize::from(magic[3]) != rank {
        return Err(bad(format!("rank {}, expected {rank}", magic[3])));
    }
    let mut dims = Vec::with_capacity(rank);
    for _ in 0..rank {
        let mut b = [0u8; 4];
        reader
            .read_exact(&mut b)
            .map_err(|e| bad(format!("header truncated ({e})")))?;
        dims.push(u32::from_be_bytes(b) as usize);
    }
    Ok(dims)
}

/// The payload's byte count, checked against the stream's length before anything is allocated,
/// so that a corrupt header cannot ask for gigabytes.
fn payload_len(
    dims: &[usize],
    rank: usize,
    stream_len: u64,
    bad: &impl Fn(String) -> DataError,
) -> Result<u64, DataError> {
    let header = 4 + 4 * rank as u64;
    let payload = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    // gzip's ISIZE is the length modulo 2^32; our files are far smaller than 4 GiB.
    if header.checked_add(payload) != Some(stream_len) {
        return Err(bad(format!(
            "header says {dims:?} ({} bytes of data) but the file holds {} bytes after the header",
            payload,
            stream_len.saturating_sub(header)
        )));
    }
    if dims.contains(&0) {
        return Err(bad(format!(
            "header says {dims:?}: a data set needs at least one sample of at least one value"
        )));
    }
    Ok(payload)
}

/// The `payload` data bytes, then the rest of the stream, which must be empty and, for gzip,
/// pass the integrity check that only happens at the end.
fn read_payload(
    reader: &mut impl Read,
    payload: u64,
    bad: &impl Fn(String) -> DataError,
) -> Result<Vec<u8>, DataError> {
    // Reserve at most 64 MiB up front and grow as bytes arrive: a gzip trailer is not checked
    // before the end, so a forged one must not make a tiny file reserve gigabytes.
    let mut data = Vec::with_capacity(payload.min(64 << 20) as usize);
    (&mut *reader)
        .take(payload)
        .read_to_end(&mut data)
        .map_err(|e| bad(format!("data unreadable ({e})")))?;
    if data.len() as u64 != payload {
        return Err(bad(format!(
            "truncated: {} of {payload} data bytes",
            data.len()
        )));
    }
    // Read to the end of the stream: only there does gzip check its CRC-32 and length, so a
    // corrupted file is refused instead of trained on.
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).map_err(|e| {
        bad(format!(
            "corrupt: the gzip stream fails its integrity check ({e}); download the file again"
        ))
    })?;
    if !rest.is_empty() {
        return Err(bad(format!(
            "{} bytes after the data the header describes",
            rest.len()
        )));
    }
    Ok(data)
}

fn images_and_labels(dir: &Path, prefix: &str) -> Result<Dataset, DataError> {
    let images = read_idx(&dir.join(format!("{prefix}-images-idx3-ubyte.gz")), 3)?;
    let labels_path = dir.join(format!("{prefix}-labels-idx1-ubyte.gz"));
    let labels = read_idx(&labels_path, 1)?;
    if images.dims[0] != labels.dims[0] {
        return Err(DataError::Idx {
            path: labels_path,
            message: format!("{} labels for {} images", labels.dims[0], images.dims[0]),
        });
    }
    if let Some(&l) = labels.data.iter().find(|&&l| l > 9) {
        return Err(DataError::Idx {
            path: labels_path,
            message: format!("label {l} outside 0..=9"),
        });
    }
    Ok(Dataset {
        x: images.data.iter().map(|&p| f32::from(p)).collect(),
        n_features: images.dims[1] * images.dims[2],
        y: Targets::Classes {
            labels: labels.data.iter().map(|&l| u32::from(l)).collect(),
            n_classes: 10,
        },
    })
}

/// Fashion-MNIST's training and test sets from the four gzip files in `dir`.
pub fn fashion_mnist(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let train = images_and_labels(dir, "train")?;
    let test = images_and_labels(dir, "t10k")?;
    if test.n_features != train.n_features {
        return Err(DataError::Idx {
            path: dir.join("t10k-images-idx3-ubyte.gz"),
            message: format!(
                "test images have {} pixels but training images {}: the four files must come from one data set",
                test.n_features, train.n_features
            ),
        });
    }
    Ok((train, test))
}
