//! Random-access byte sources and a block-caching `Read + Seek` adapter over them.

use std::io::{self, Read, Seek, SeekFrom};

/// A random-access byte source (a local buffer, a file, an S3 object...).
pub trait ReadAt: Send + Sync {
    /// Total size of the source in bytes.
    fn size(&self) -> u64;
    /// Reads up to `len` bytes at `offset`; returns fewer only at end of source.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
}

impl ReadAt for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let start = match usize::try_from(offset) {
            Ok(start) if start <= self.len() => start,
            _ => return Ok(Vec::new()),
        };
        let end = start.saturating_add(len).min(self.len());
        Ok(self[start..end].to_vec())
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn size(&self) -> u64 {
        (**self).size()
    }

    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        (**self).read_at(offset, len)
    }
}

/// A [`ReadAt`] the way probing reads an untrusted upload: small reads (box headers, EBML elements) share
/// cached 1 MiB blocks, so a file of a million tiny boxes costs a few reads, not a million; reads of a block or
/// more go straight through; and every read after the deadline fails (`TimedOut`), so no file can keep a probe
/// busy for longer than its budget.
pub struct BudgetedSource<'a> {
    src: &'a dyn ReadAt,
    cache: std::sync::Mutex<SourceReader<'a>>,
    deadline: std::time::Instant,
}

impl<'a> BudgetedSource<'a> {
    pub fn new(src: &'a dyn ReadAt, budget: std::time::Duration) -> Self {
        BudgetedSource {
            src,
            cache: std::sync::Mutex::new(SourceReader {
                poll: false,
                ..SourceReader::new(src)
            }),
            deadline: std::time::Instant::now() + budget,
        }
    }

    /// Underlying reads made so far (cached blocks and direct reads).
    pub fn reads(&self) -> u64 {
        self.cache.lock().map(|c| c.reads()).unwrap_or(0)
    }
}

impl ReadAt for BudgetedSource<'_> {
    fn size(&self) -> u64 {
        self.src.size()
    }

    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if std::time::Instant::now() > self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the probe's time budget is spent",
            ));
        }
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| io::Error::other("probe cache poisoned"))?;
        if len as u64 >= BLOCK_SIZE {
            cache.reads += 1;
            return self.src.read_at(offset, len);
        }
        cache.seek(SeekFrom::Start(offset))?;
        let mut out = vec![0u8; len.min(usize::try_from(self.src.size().saturating_sub(offset)).unwrap_or(len))];
        let mut got = 0;
        while got < out.len() {
            match cache.read(&mut out[got..])? {
                0 => break,
                n => got += n,
            }
        }
        out.truncate(got);
        Ok(out)
    }
}

/// Size of one cached block.
const BLOCK_SIZE: u64 = 1 << 20;
/// Number of blocks kept in the cache.
const MAX_BLOCKS: usize = 4;

struct Block {
    index: u64,
    data: Vec<u8>,
    last_used: u64,
}

/// `std::io::Read + Seek` over a [`ReadAt`], with a small block cache (1 MiB
/// blocks, 4 kept) so that a demuxer pulling small reads causes few underlying
/// `read_at` calls (in production `read_at` is an S3 ranged GET).
pub struct SourceReader<'a> {
    src: &'a dyn ReadAt,
    size: u64,
    pos: u64,
    blocks: Vec<Block>,
    clock: u64,
    reads: u64,
    /// `read` calls so far.
    calls: u64,
    /// Whether every 4096th `read` makes an empty read of the source (not for a `BudgetedSource`'s own cache).
    poll: bool,
}

impl<'a> SourceReader<'a> {
    /// Wraps `src`, starting at offset 0.
    pub fn new(src: &'a dyn ReadAt) -> Self {
        SourceReader {
            src,
            size: src.size(),
            pos: 0,
            blocks: Vec::with_capacity(MAX_BLOCKS),
            clock: 0,
            reads: 0,
            calls: 0,
            poll: true,
        }
    }

    /// Number of underlying `read_at` calls made so far.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Size of the underlying source.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Returns the cached block `index`, fetching it (and evicting the least
    /// recently used block) if needed.
    fn block(&mut self, index: u64) -> io::Result<&[u8]> {
        self.clock += 1;
        let clock = self.clock;
        let slot = match self.blocks.iter().position(|b| b.index == index) {
            Some(slot) => slot,
            None => {
                let offset = index.saturating_mul(BLOCK_SIZE);
                let want = BLOCK_SIZE.min(self.size.saturating_sub(offset));
                // `want` <= BLOCK_SIZE, which always fits in usize.
                let want = usize::try_from(want).unwrap_or(0);
                self.reads += 1;
                let data = self.src.read_at(offset, want)?;
                let block = Block {
                    index,
                    data,
                    last_used: clock,
                };
                if self.blocks.len() < MAX_BLOCKS {
                    self.blocks.push(block);
                    self.blocks.len() - 1
                } else {
                    let lru = self
                        .blocks
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, b)| b.last_used)
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    self.blocks[lru] = block;
                    lru
                }
            }
        };
        let block = &mut self.blocks[slot];
        block.last_used = clock;
        Ok(&block.data)
    }
}

impl Read for SourceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.size {
            return Ok(0);
        }
        // A demuxer looping over cached bytes makes no underlying read: every 4096 reads, an empty one lets the
        // source refuse (a `BudgetedSource` past its deadline fails it).
        self.calls += 1;
        if self.poll && self.calls % 4096 == 0 {
            self.src.read_at(self.pos, 0)?;
        }
        let index = self.pos / BLOCK_SIZE;
        // Always < BLOCK_SIZE, so it fits in usize.
        let within = usize::try_from(self.pos % BLOCK_SIZE).unwrap_or(0);
        let data = self.block(index)?;
        let Some(available) = data.get(within..) else {
            // The source returned less than its size promised.
            return Ok(0);
        };
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SourceReader<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
        }
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_reads_hit_the_cache() {
        let data: Vec<u8> = (0..3 * BLOCK_SIZE + 17).map(|i| (i % 251) as u8).collect();
        let mut r = SourceReader::new(&data);
        let mut out = Vec::new();
        let mut buf = [0u8; 100];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, data);
        assert_eq!(r.reads(), 4);
        // Going back to a cached block costs nothing.
        r.seek(SeekFrom::Start(10)).unwrap();
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[..], &data[10..110]);
        assert_eq!(r.reads(), 4);
        // Seeking from the end and past the end.
        assert_eq!(r.seek(SeekFrom::End(-1)).unwrap(), data.len() as u64 - 1);
        assert_eq!(r.read(&mut buf).unwrap(), 1);
        r.seek(SeekFrom::End(10)).unwrap();
        assert_eq!(r.read(&mut buf).unwrap(), 0);
        assert!(r.seek(SeekFrom::Current(-(data.len() as i64) - 100)).is_err());
    }

    #[test]
    fn vec_read_at_clamps() {
        let data = vec![1u8, 2, 3];
        assert_eq!(data.read_at(1, 10).unwrap(), vec![2, 3]);
        assert!(data.read_at(5, 10).unwrap().is_empty());
        assert!(data.read_at(u64::MAX, usize::MAX).unwrap().is_empty());
    }
}
