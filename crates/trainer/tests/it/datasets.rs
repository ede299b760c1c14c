//! Dataset readers on good and bad files: ragged CSV, corrupt and truncated IDX.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use trainer::config::{DataConfig, TaskKind};
use trainer::data::{load, read_csv, read_idx};

fn gz(path: &Path, bytes: &[u8]) {
    let mut e = GzEncoder::new(std::fs::File::create(path).unwrap(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

fn idx_bytes(dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend_from_slice(payload);
    b
}

#[test]
fn ragged_and_non_numeric_csv_rows_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = crate::write(dir.path(), "d.csv", "a,b,label\n1,2,x\n3,4,y\n5,6\n");
    let e = read_csv(&p, Some("label"), TaskKind::Classification).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:4:3: expected 3 fields as in the header, found 2",
            p.display()
        )
    );
    let p = crate::write(dir.path(), "e.csv", "a,b,label\n1,2,x\n3,four,y\n");
    let e = read_csv(&p, Some("label"), TaskKind::Classification).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}:3:2: column `b`: `four` is not a number", p.display())
    );
    let good = read_csv(
        &crate::write(dir.path(), "g.csv", "a,b,label\n1,2,x\n3,4,y\n"),
        Some("label"),
        TaskKind::Classification,
    )
    .unwrap();
    assert_eq!(good.labels().unwrap(), &[0, 1]);
}

#[test]
fn idx_reader_accepts_good_files_and_rejects_corrupt_ones_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good-idx3-ubyte.gz");
    gz(
        &good,
        &idx_bytes(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
    );
    let a = read_idx(&good, 3).unwrap();
    assert_eq!(a.dims, vec![2, 2, 3]);
    assert_eq!(a.data[11], 12);

    // A header that claims 4 billion images of 2000 pixels (8 TB): rejected from the sizes alone.
    let huge = dir.path().join("huge.gz");
    gz(&huge, &idx_bytes(&[u32::MAX, 1000, 2], &[0; 8]));
    let e = read_idx(&huge, 3).unwrap_err().to_string();
    assert!(
        e.contains("not a valid IDX file") && e.contains("header says"),
        "{e}"
    );

    // Fewer data bytes than the header promises.
    let short = dir.path().join("short.gz");
    gz(&short, &idx_bytes(&[3, 2, 2], &[1; 10]));
    let e = read_idx(&short, 3).unwrap_err().to_string();
    assert!(
        e.contains("12 bytes of data") && e.contains("holds 10 bytes"),
        "{e}"
    );

    // A gzip stream cut in the middle (the trailer is gone too).
    let cut = dir.path().join("cut.gz");
    let full = std::fs::read(&good).unwrap();
    std::fs::write(&cut, &full[..full.len() - 9]).unwrap();
    assert!(read_idx(&cut, 3).is_err());

    // A flipped bit in the CRC-32 of the trailer: the data decode, the check fails.
    let crc = dir.path().join("crc.gz");
    let mut bytes = full.clone();
    let at = bytes.len() - 8;
    bytes[at] ^= 0x01;
    std::fs::write(&crc, &bytes).unwrap();
    let e = read_idx(&crc, 3).unwrap_err().to_string();
    assert!(e.contains("integrity check") && e.contains("crc.gz"), "{e}");

    // Dimensions whose product is 2^64 - 1: the header arithmetic must not overflow.
    let plain = dir.path().join("overflow-idx");
    std::fs::write(&plain, idx_bytes(&[1_722_007_169, 42_009_217, 255], &[])).unwrap();
    let e = read_idx(&plain, 3).unwrap_err().to_string();
    assert!(e.contains("header says"), "{e}");

    // A header with zero rows (or zero pixels) describes no data set.
    let empty = dir.path().join("empty.gz");
    gz(&empty, &idx_bytes(&[0, 28, 28], &[]));
    let e = read_idx(&empty, 3).unwrap_err().to_string();
    assert!(
        e.contains("[0, 28, 28]") && e.contains("at least one sample"),
        "{e}"
    );

    // Wrong magic, wrong element type, wrong rank; plain (not gzip) files too.
    let plain = dir.path().join("plain-idx");
    let mut bytes = idx_bytes(&[2, 2], &[0; 4]);
    bytes[0] = 7;
    std::fs::write(&plain, &bytes).unwrap();
    assert!(
        read_idx(&plain, 2)
            .unwrap_err()
            .to_string()
            .contains("magic")
    );
    let mut bytes = idx_bytes(&[2, 2], &[0; 4]);
    bytes[2] = 0x0D;
    std::fs::write(&plain, &bytes).unwrap();
    assert!(
        read_idx(&plain, 2)
            .unwrap_err()
            .to_string()
            .contains("element type")
    );
    std::fs::write(&plain, idx_bytes(&[4], &[0; 4])).unwrap();
    assert!(
        read_idx(&plain, 3)
            .unwrap_err()
            .to_string()
            .contains("rank 1, expected 3")
    );
}

#[test]
fn a_missing_fashion_mnist_dir_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg: DataConfig = toml::from_str(&format!(
        "name = \"fashion-mnist\"\ndir = \"{}\"",
        dir.path().join("nothing-here").display()
    ))
    .unwrap();
    let e = load(&cfg, 0, dir.path()).unwrap_err().to_string();
    assert!(e.contains("nothing-here"), "{e}");
}

#[test]
fn digits_split_is_stratified_and_deterministic() {
    let cfg: DataConfig =
        toml::from_str("name = \"digits\"\ntest_fraction = 0.2\nvalidation_fraction = 0.1")
            .unwrap();
    let a = load(&cfg, 3, Path::new(".")).unwrap();
    let b = load(&cfg, 3, Path::new(".")).unwrap();
    assert_eq!(a.train, b.train);
    let test = a.test.unwrap();
    assert_eq!(a.train.len() + a.valid.unwrap().len() + test.len(), 1797);
    assert_eq!(a.train.n_features, 64);
    // Every digit is in the test split in proportion (about 36 of each 180).
    for class in 0..10 {
        let k = test
            .labels()
            .unwrap()
            .iter()
            .filter(|&&l| l == class)
            .count();
        assert!((34..=38).contains(&k), "class {class}: {k}");
    }
}

#[test]
fn test_images_of_another_size_than_training_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gz(
        &d.join("train-images-idx3-ubyte.gz"),
        &idx_bytes(&[2, 2, 2], &[0; 8]),
    );
    gz(
        &d.join("train-labels-idx1-ubyte.gz"),
        &idx_bytes(&[2], &[0, 1]),
    );
    gz(
        &d.join("t10k-images-idx3-ubyte.gz"),
        &idx_bytes(&[1, 3, 3], &[0; 9]),
    );
    gz(&d.join("t10k-labels-idx1-ubyte.gz"), &idx_bytes(&[1], &[1]));
    let e = trainer::data::fashion_mnist(d).unwrap_err().to_string();
    assert!(
        e.contains("test images have 9 pixels but training images 4") && e.contains("t10k-images"),
        "{e}"
    );
}
