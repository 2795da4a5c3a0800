//! WebSocket framing by hand (RFC 6455, final frames), both ways: the
//! fan-out's raw client ([`crate::raw_ws`]) reads the server's frames and
//! writes masked ones, the direct floor ([`crate::fanout_floor`]) the
//! reverse.

/// Appends a final frame to `out`, masked with `mask` when a client sends it.
pub fn write(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    let masked = if mask.is_some() { 0x80 } else { 0 };
    out.reserve(payload.len() + 14);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(masked | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(masked | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(masked | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            out.extend_from_slice(&mask);
            out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        }
        None => out.extend_from_slice(payload),
    }
}

/// Where a frame's payload lies.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// The final frame of its message.
    pub fin: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    /// Bytes before the payload.
    pub header: usize,
    pub len: usize,
}

impl Head {
    /// Bytes the whole frame takes.
    pub fn end(&self) -> usize {
        self.header + self.len
    }
}

/// The head of the frame `bytes` begin with, once all of the frame is there.
pub fn head(bytes: &[u8]) -> anyhow::Result<Option<Head>> {
    let [first, second, ..] = *bytes else {
        return Ok(None);
    };
    let (mut header, len) = match second & 0x7f {
        126 if bytes.len() >= 4 => (4, usize::from(u16::from_be_bytes([bytes[2], bytes[3]]))),
        127 if bytes.len() >= 10 => {
            let len: [u8; 8] = bytes[2..10].try_into()?;
            (10, usize::try_from(u64::from_be_bytes(len))?)
        }
        126 | 127 => return Ok(None),
        len => (2, usize::from(len)),
    };
    let mask = if second & 0x80 != 0 {
        let Some(mask) = bytes.get(header..header + 4) else {
            return Ok(None);
        };
        header += 4;
        Some(mask.try_into()?)
    } else {
        None
    };
    if bytes.len() < header + len {
        return Ok(None);
    }
    Ok(Some(Head {
        fin: first & 0x80 != 0,
        opcode: first & 0x0f,
        mask,
        header,
        len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(opcode: u8, header: usize, len: usize) -> Option<Head> {
        Some(Head {
            fin: true,
            opcode,
            mask: None,
            header,
            len,
        })
    }

    #[test]
    fn reads_each_length_form_once_the_frame_is_complete() {
        let mut short = vec![0x81, 3];
        short.extend_from_slice(b"abc");
        assert_eq!(head(&short).unwrap(), server(1, 2, 3));
        assert_eq!(head(&short[..4]).unwrap(), None);

        let mut medium = vec![0x81, 126, 0x01, 0x00];
        medium.resize(4 + 256, b'x');
        assert_eq!(head(&medium).unwrap(), server(1, 4, 256));
        assert_eq!(head(&medium[..3]).unwrap(), None);
        assert_eq!(head(&medium[..100]).unwrap(), None);

        let mut long = vec![0x89, 127, 0, 0, 0, 0, 0, 1, 0, 0];
        long.resize(10 + 65_536, b'y');
        assert_eq!(head(&long).unwrap(), server(9, 10, 65_536));
        assert_eq!(head(&long[..9]).unwrap(), None);

        assert_eq!(head(&[0x81]).unwrap(), None);
        assert_eq!(head(&[0x8a, 0]).unwrap(), server(0xa, 2, 0));
    }

    #[test]
    fn a_written_frame_reads_back_in_each_length_form() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for mask in [None, Some([0x5a, 0x17, 0xc3, 0x8e])] {
                let mut out = Vec::new();
                write(&mut out, 0x1, &payload, mask);
                let read = head(&out).unwrap().unwrap();
                assert!(read.fin);
                assert_eq!((read.opcode, read.mask, read.len), (0x1, mask, len));
                assert_eq!(read.end(), out.len());
                assert_eq!(head(&out[..out.len() - 1]).unwrap(), None, "{len}");
                let body = &out[read.header..read.end()];
                let unmasked: Vec<u8> = match mask {
                    Some(mask) => body
                        .iter()
                        .zip(mask.iter().cycle())
                        .map(|(b, m)| b ^ m)
                        .collect(),
                    None => body.to_vec(),
                };
                assert_eq!(unmasked, payload);
            }
        }
    }
}
