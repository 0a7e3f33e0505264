//! Whole transfers: a [`Sender`] and a [`Receiver`] talking the way the
//! wire's `Offer` / `Accept` / `From` / `Sent` exchange has them talk.
#![allow(clippy::unwrap_used)]

use super::names::partial_name;
use super::testdir::TestDir;
use super::*;
use std::path::{Path, PathBuf};

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// What one transfer did.
#[derive(Debug)]
struct Outcome {
    /// The sender's answer to `Accept`.
    from: u64,
    /// Bytes that crossed the channel.
    sent: u64,
    /// The receiver's verdict.
    saved: Result<PathBuf, FileError>,
    /// The hash in `Sent`.
    sha256: String,
}

fn transfer(source: &Path, root: &Path, components: &[String], chunk: usize) -> Outcome {
    let mut s = Sender::open(source).unwrap();
    // Offer{path, size} → prepare; Accept{offset, partial_sha256}.
    let mut r = Receiver::prepare(root, components, s.size()).unwrap();
    let (offset, partial_sha256) = r.partial().unwrap();
    // From{offset}.
    let from = s.resume_from(offset, &partial_sha256).unwrap();
    r.begin(from).unwrap();
    let mut sent = 0;
    loop {
        let c = s.read_chunk(chunk).unwrap();
        if c.is_empty() {
            break;
        }
        sent += c.len() as u64;
        r.write(&c).unwrap();
    }
    assert_eq!(s.position(), r.received());
    // Sent{sha256} → Saved.
    let sha256 = s.finish();
    Outcome {
        from,
        sent,
        saved: r.finish(&sha256),
        sha256,
    }
}

#[test]
fn a_whole_transfer_is_byte_exact() {
    let dir = TestDir::new("xfer-whole");
    let bytes = data(300_001);
    let source = dir.write("src/big.bin", &bytes);
    let root = dir.path().join("dst");
    std::fs::create_dir(&root).unwrap();

    let got = transfer(&source, &root, &["big.bin".to_string()], 16 * 1024);
    assert_eq!(got.from, 0);
    assert_eq!(got.sent, 300_001);
    assert_eq!(got.sha256, sha256_hex(&bytes));
    let saved = got.saved.unwrap();
    assert_eq!(saved.file_name().unwrap(), "big.bin");
    assert_eq!(std::fs::read(&saved).unwrap(), bytes);
    assert!(!root.join(partial_name("big.bin")).exists());
}

#[test]
fn a_matching_partial_copy_is_resumed() {
    let dir = TestDir::new("xfer-resume");
    let bytes = data(100_000);
    let source = dir.write("src/a.bin", &bytes);
    let root = dir.path().join("dst");
    dir.write(&format!("dst/{}", partial_name("a.bin")), &bytes[..60_000]);

    let got = transfer(&source, &root, &["a.bin".to_string()], 7000);
    assert_eq!(got.from, 60_000);
    assert_eq!(got.sent, 40_000, "only the rest crosses");
    assert_eq!(got.sha256, sha256_hex(&bytes));
    assert_eq!(std::fs::read(got.saved.unwrap()).unwrap(), bytes);
}

#[test]
fn a_damaged_partial_copy_starts_over_and_the_result_is_exact() {
    let dir = TestDir::new("xfer-damaged");
    let bytes = data(50_000);
    let source = dir.write("src/a.bin", &bytes);
    let root = dir.path().join("dst");
    let mut damaged = bytes[..30_000].to_vec();
    damaged[12_345] ^= 0x40;
    dir.write(&format!("dst/{}", partial_name("a.bin")), &damaged);

    let got = transfer(&source, &root, &["a.bin".to_string()], 4096);
    assert_eq!(got.from, 0);
    assert_eq!(got.sent, 50_000);
    assert_eq!(std::fs::read(got.saved.unwrap()).unwrap(), bytes);
}

#[test]
fn a_wrong_final_hash_saves_nothing_and_the_next_attempt_starts_over() {
    let dir = TestDir::new("xfer-wrong");
    let bytes = data(20_000);
    let root = dir.path().join("dst");
    std::fs::create_dir(&root).unwrap();
    let part = root.join(partial_name("a.bin"));

    let mut r = Receiver::prepare(&root, &["a.bin".to_string()], 20_000).unwrap();
    r.begin(0).unwrap();
    r.write(&bytes).unwrap();
    let mut other = bytes.clone();
    other[0] ^= 1;
    let e = r.finish(&sha256_hex(&other)).unwrap_err();
    assert!(matches!(e, FileError::Corrupt), "{e:?}");
    assert!(e.to_string().contains("damaged"), "{e}");
    assert!(!part.exists());
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);

    let mut r = Receiver::prepare(&root, &["a.bin".to_string()], 20_000).unwrap();
    assert_eq!(r.partial().unwrap(), (0, String::new()));
}

#[test]
fn a_folder_tree_arrives_in_place() {
    let dir = TestDir::new("xfer-tree");
    dir.write("src/photos/2024/a.jpg", &data(1000));
    dir.write("src/photos/2024/summer/b.jpg", &data(2000));
    dir.write("src/photos/c.txt", b"c");
    let root = dir.path().join("dst");
    std::fs::create_dir(&root).unwrap();

    let list = files(&dir.path().join("src/photos")).unwrap();
    assert_eq!(list.len(), 3);
    for (components, source, size) in &list {
        let got = transfer(source, &root, components, 512);
        assert_eq!(got.sent, *size);
        let saved = got.saved.unwrap();
        let want = components
            .iter()
            .fold(root.canonicalize().unwrap(), |p, c| p.join(c));
        assert_eq!(saved, want);
        assert_eq!(
            std::fs::read(&saved).unwrap(),
            std::fs::read(source).unwrap()
        );
    }

    // The same tree again: every file gets a new name, nothing is replaced.
    for (components, source, _) in &list {
        let saved = transfer(source, &root, components, 512).saved.unwrap();
        assert!(
            saved
                .file_name()
                .unwrap()
                .to_string_lossy()
                .contains(" (1)")
        );
    }
}
