//! Git pack streams of blobs, written as they are made.
//!
//! A commit of a whole tenant writes about 100,000 new blobs. Putting them
//! into an in-memory object database and packing that afterwards holds every
//! blob twice over (the caller's bytes and the database's copy) and
//! compresses them on one core. [`BlobPack`] instead turns blobs into the
//! entries of a version 2 pack stream a batch at a time: each blob is
//! compressed on every core, written to the sink in order, and dropped. The
//! sink is git's own indexer (`Odb::packwriter` in `vcs`), which checks the
//! stream, names the pack by its checksum and writes its index. Only blobs
//! go in, undeltified: the trees above them are few and go through libgit2.
//! This module never names git2.

use std::io::Write;

use flate2::{Compress, Compression, FlushCompress, Status};
use rayon::prelude::*;
use sha1::{Digest, Sha1};

/// A raw object ID (SHA-1).
pub type RawId = [u8; 20];

/// The object type number of a blob in a pack entry's header.
const BLOB: u8 = 3;

/// A pack stream being written: its header is out, [`BlobPack::add`] adds
/// entries, [`BlobPack::finish`] writes the checksum once every promised
/// entry is in.
pub struct BlobPack<W: Write> {
    sink: W,
    checksum: Sha1,
    left: u32,
}

impl<W: Write> BlobPack<W> {
    /// Start a pack of exactly `count` blobs on `sink`.
    pub fn start(sink: W, count: u32) -> std::io::Result<Self> {
        let mut pack = BlobPack {
            sink,
            checksum: Sha1::new(),
            left: count,
        };
        let mut header = Vec::with_capacity(12);
        header.extend_from_slice(b"PACK");
        header.extend_from_slice(&2u32.to_be_bytes());
        header.extend_from_slice(&count.to_be_bytes());
        pack.put(&header)?;
        Ok(pack)
    }

    /// Add `blobs` (compressed on every core, written in order); their
    /// object IDs, in the same order.
    pub fn add(&mut self, blobs: &[Vec<u8>]) -> std::io::Result<Vec<RawId>> {
        let blobs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        self.add_entries(pack_entries(&blobs)?)
    }

    /// Add entries made by [`pack_entries`] (perhaps long before), in
    /// order; their object IDs.
    pub fn add_entries(&mut self, entries: Vec<(RawId, Vec<u8>)>) -> std::io::Result<Vec<RawId>> {
        let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        if count > self.left {
            return Err(std::io::Error::other(format!(
                "{} more blobs than the pack was started with",
                count - self.left
            )));
        }
        let mut ids = Vec::with_capacity(entries.len());
        for (id, bytes) in entries {
            self.put(&bytes)?;
            ids.push(id);
        }
        self.left -= count;
        Ok(ids)
    }

    /// Write the trailing checksum; the sink, for the caller to commit.
    pub fn finish(mut self) -> std::io::Result<W> {
        if self.left != 0 {
            return Err(std::io::Error::other(format!(
                "{} blobs promised to the pack were never added",
                self.left
            )));
        }
        let digest = self.checksum.finalize();
        self.sink.write_all(&digest)?;
        Ok(self.sink)
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.checksum.update(bytes);
        self.sink.write_all(bytes)
    }
}

/// The pack entries of `blobs` with their object IDs, compressed on every
/// core: about half the blobs' bytes, to be held until the pack is written.
pub fn pack_entries(blobs: &[&[u8]]) -> std::io::Result<Vec<(RawId, Vec<u8>)>> {
    let ids = blobs.par_iter().map(|b| blob_id(b)).collect::<Vec<_>>();
    Ok(ids.into_iter().zip(compress_entries(blobs)?).collect())
}

/// [`pack_entries`] without the IDs, for a caller that hashed the blobs
/// already (to compare them with a commit's).
pub fn compress_entries(blobs: &[&[u8]]) -> std::io::Result<Vec<Vec<u8>>> {
    blobs
        .par_iter()
        .map_init(
            || Compress::new(Compression::default(), true),
            |zlib, bytes| entry(zlib, bytes),
        )
        .collect()
}

/// A blob's object ID: the SHA-1 of `blob <size>\0` and its bytes.
pub fn blob_id(bytes: &[u8]) -> RawId {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    h.finalize().into()
}

/// One pack entry: the type-and-size header, then the zlib stream.
fn entry(zlib: &mut Compress, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() / 2 + 64);
    let mut size = bytes.len();
    let mut first = (BLOB << 4) | (size & 0x0f) as u8;
    size >>= 4;
    while size > 0 {
        out.push(first | 0x80);
        first = (size & 0x7f) as u8;
        size >>= 7;
    }
    out.push(first);
    zlib.reset();
    loop {
        let read = usize::try_from(zlib.total_in()).unwrap_or(usize::MAX);
        let rest = bytes.get(read..).unwrap_or_default();
        out.reserve(rest.len() / 2 + 64);
        let status = zlib
            .compress_vec(rest, &mut out, FlushCompress::Finish)
            .map_err(std::io::Error::other)?;
        if status == Status::StreamEnd {
            return Ok(out);
        }
    }
}

/// The blob a pack entry made by [`pack_entries`] holds, inflated again
/// (for a commit too small to be worth a pack of its own).
pub fn entry_blob(entry: &[u8]) -> std::io::Result<Vec<u8>> {
    let bad = || std::io::Error::other("a pack entry with no header");
    let header = entry.iter().position(|b| b & 0x80 == 0).ok_or_else(bad)?;
    let (first, rest) = (entry.first().ok_or_else(bad)?, entry.get(header + 1..));
    let mut size = usize::from(first & 0x0f);
    for (i, b) in entry.iter().take(header + 1).skip(1).enumerate() {
        size |= usize::from(b & 0x7f) << (4 + 7 * i);
    }
    let mut out = Vec::with_capacity(size);
    std::io::Read::read_to_end(
        &mut flate2::read::ZlibDecoder::new(rest.unwrap_or_default()),
        &mut out,
    )?;
    if out.len() != size {
        return Err(std::io::Error::other(
            "a pack entry's size is not its blob's",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_id_is_gits() {
        // `printf 'hello\n' | git hash-object --stdin`
        let id = blob_id(b"hello\n");
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ce013625030ba8dba906f756967f9e9ca394464a");
    }

    #[test]
    fn entry_headers_carry_type_and_size() {
        let mut zlib = Compress::new(Compression::default(), true);
        // 15 bytes fit the first byte; 16 need a second.
        assert_eq!(entry(&mut zlib, &[b'a'; 15]).unwrap()[0], 0x3f);
        let e = entry(&mut zlib, &[b'a'; 16]).unwrap();
        assert_eq!(&e[..2], &[0xb0, 0x01]);
    }

    #[test]
    fn an_entry_inflates_to_its_blob() {
        for blob in [b"".to_vec(), b"short".to_vec(), vec![b'x'; 70_000]] {
            let entries = pack_entries(&[blob.as_slice()]).unwrap();
            assert_eq!(entries[0].0, blob_id(&blob));
            assert_eq!(entry_blob(&entries[0].1).unwrap(), blob);
        }
    }

    #[test]
    fn a_pack_refuses_more_or_fewer_blobs_than_promised() {
        let mut pack = BlobPack::start(Vec::new(), 1).unwrap();
        assert!(pack.add(&[b"a".to_vec(), b"b".to_vec()]).is_err());
        assert!(BlobPack::start(Vec::new(), 1).unwrap().finish().is_err());
    }
}
