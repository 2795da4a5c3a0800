//! AssemblyScript's string ABI: how strings sit in linear memory.
//!
//! A managed object is preceded by a 20-byte header; its last two fields are
//! the runtime class id (`ptr - 8`) and the payload size in bytes (`ptr - 4`).
//! Strings are class id 2 and hold UTF-16LE code units.

/// Runtime class id of `String` (`Object` = 0, `ArrayBuffer` = 1, `String` = 2);
/// fixed by AssemblyScript's runtime, and checked against compiled fixtures in
/// the tests.
pub(crate) const STRING_CLASS_ID: i32 = 2;

const HEADER_RT_ID: usize = 8;
const HEADER_RT_SIZE: usize = 4;

/// Why a pointer handed out by the module does not lead to a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StringError {
    Null,
    OutOfBounds,
    OddLength,
}

/// The UTF-16LE payload of the string at `ptr`, bounds-checked against memory.
pub(crate) fn string_bytes(memory: &[u8], ptr: u32) -> Result<&[u8], StringError> {
    if ptr == 0 {
        return Err(StringError::Null);
    }
    let ptr = ptr as usize;
    let size_at = ptr
        .checked_sub(HEADER_RT_SIZE)
        .ok_or(StringError::OutOfBounds)?;
    let size_bytes = memory.get(size_at..ptr).ok_or(StringError::OutOfBounds)?;
    let mut raw = [0u8; 4];
    raw.copy_from_slice(size_bytes);
    let len = u32::from_le_bytes(raw) as usize;
    if !len.is_multiple_of(2) {
        return Err(StringError::OddLength);
    }
    let end = ptr.checked_add(len).ok_or(StringError::OutOfBounds)?;
    memory.get(ptr..end).ok_or(StringError::OutOfBounds)
}

/// The runtime class id in the header of the object at `ptr`, if in bounds.
pub(crate) fn class_id(memory: &[u8], ptr: u32) -> Option<u32> {
    let at = (ptr as usize).checked_sub(HEADER_RT_ID)?;
    let bytes = memory.get(at..at + 4)?;
    let mut raw = [0u8; 4];
    raw.copy_from_slice(bytes);
    Some(u32::from_le_bytes(raw))
}

fn units(bytes: &[u8]) -> impl Iterator<Item = u16> + '_ {
    bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
}

/// Decode a UTF-16 JSON text to UTF-8 without losing anything.
///
/// UTF-8 cannot carry a lone surrogate, but JSON can: inside a string
/// literal a raw code unit and its `\uXXXX` escape mean the same thing, so
/// lone surrogates are written as escapes. That matters in practice:
/// json-as 1.6 splits a surrogate pair that straddles its 4-unit chunk
/// boundary into a raw high surrogate followed by an escaped low one
/// (`"abc😀"` becomes `"abc\u{D83D}\ude00"`), which a JSON parser reads back
/// as the original pair. A surrogate that is really unpaired still fails
/// JSON parsing afterwards. Returns the index (in code units) of the first
/// lone surrogate, if any, for the error message.
pub(crate) fn decode_json_text(bytes: &[u8]) -> (String, Option<usize>) {
    if let Some(text) = ascii_text(bytes) {
        return (text, None);
    }
    let mut out = String::with_capacity(bytes.len() / 2);
    let mut index = 0;
    let mut first_lone = None;
    for decoded in char::decode_utf16(units(bytes)) {
        match decoded {
            Ok(c) => {
                out.push(c);
                index += c.len_utf16();
            }
            Err(lone) => {
                first_lone.get_or_insert(index);
                out.push_str(&format!("\\u{:04x}", lone.unpaired_surrogate()));
                index += 1;
            }
        }
    }
    (out, first_lone)
}

/// The text of UTF-16LE `bytes` that are all ASCII (most JSON is), decoded
/// without going through `char`; `None` at the first unit that is not.
fn ascii_text(bytes: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for unit in bytes.chunks_exact(2) {
        match unit {
            [low, 0] if low.is_ascii() => out.push(*low),
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// Lossy decoding of at most `max_units` code units, for diagnostics (abort
/// messages, logs) where a replacement character beats failing.
pub(crate) fn decode_lossy(bytes: &[u8], max_units: usize) -> String {
    let take = bytes.len().min(max_units.saturating_mul(2));
    char::decode_utf16(units(&bytes[..take]))
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// UTF-8 size the string would have, without decoding it (lone surrogates
/// count as the 3 bytes of U+FFFD).
pub(crate) fn utf8_len(bytes: &[u8]) -> usize {
    char::decode_utf16(units(bytes))
        .map(|c| c.map_or(3, char::len_utf8))
        .sum()
}

/// Number of bytes `s` occupies as UTF-16.
pub(crate) fn utf16_byte_len(s: &str) -> usize {
    if s.is_ascii() {
        return s.len() * 2;
    }
    s.encode_utf16().count() * 2
}

/// Write `s` as UTF-16LE at `ptr`; `None` when it does not fit in memory.
pub(crate) fn write_utf16(memory: &mut [u8], ptr: u32, s: &str, byte_len: usize) -> Option<()> {
    let start = ptr as usize;
    let dest = memory.get_mut(start..start.checked_add(byte_len)?)?;
    if s.is_ascii() {
        for (slot, byte) in dest.chunks_exact_mut(2).zip(s.bytes()) {
            slot.copy_from_slice(&[byte, 0]);
        }
        return Some(());
    }
    for (slot, unit) in dest.chunks_exact_mut(2).zip(s.encode_utf16()) {
        slot.copy_from_slice(&unit.to_le_bytes());
    }
    Some(())
}

/// Keep only the file name of a path as AssemblyScript reports it
/// (`assembly/index.ts` -> `index.ts`), so no directory layout leaks.
pub(crate) fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(memory: &mut Vec<u8>, ptr: usize, class: u32, payload: &[u8]) {
        memory.resize(ptr + payload.len() + 16, 0);
        memory[ptr - 8..ptr - 4].copy_from_slice(&class.to_le_bytes());
        memory[ptr - 4..ptr].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        memory[ptr..ptr + payload.len()].copy_from_slice(payload);
    }

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn round_trips_non_ascii_and_emoji() {
        let text = "héllo wörld ✓ 😀 𝄞 \u{0}";
        let mut memory = Vec::new();
        object(&mut memory, 32, 2, &utf16(text));
        let bytes = string_bytes(&memory, 32).unwrap();
        assert_eq!(decode_json_text(bytes), (text.to_owned(), None));
        assert_eq!(utf8_len(bytes), text.len());
        assert_eq!(class_id(&memory, 32), Some(2));
    }

    #[test]
    fn lone_surrogates_are_errors_not_panics() {
        let mut payload = utf16("ab");
        payload.extend_from_slice(&0xD83Du16.to_le_bytes());
        payload.extend_from_slice(&utf16("c"));
        let mut memory = Vec::new();
        object(&mut memory, 16, 2, &payload);
        let bytes = string_bytes(&memory, 16).unwrap();
        assert_eq!(decode_json_text(bytes), ("ab\\ud83dc".to_owned(), Some(2)));
        assert_eq!(decode_lossy(bytes, 100), "ab\u{FFFD}c");
        assert_eq!(utf8_len(bytes), 6);
    }

    #[test]
    fn split_surrogate_pairs_survive_as_json_escapes() {
        // What json-as emits for "abc😀": raw high surrogate, escaped low one.
        let mut payload = utf16("\"abc");
        payload.extend_from_slice(&0xD83Du16.to_le_bytes());
        payload.extend_from_slice(&utf16("\\ude00\""));
        let (text, lone) = decode_json_text(&payload);
        assert_eq!(lone, Some(4));
        let value: String = serde_json::from_str(&text).unwrap();
        assert_eq!(value, "abc😀");
    }

    #[test]
    fn bad_pointers_are_rejected() {
        let mut memory = vec![0u8; 64];
        assert_eq!(string_bytes(&memory, 0), Err(StringError::Null));
        assert_eq!(string_bytes(&memory, 2), Err(StringError::OutOfBounds));
        assert_eq!(string_bytes(&memory, 1000), Err(StringError::OutOfBounds));
        memory[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(string_bytes(&memory, 32).is_err());
        memory[28..32].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(string_bytes(&memory, 32), Err(StringError::OddLength));
        memory[28..32].copy_from_slice(&40u32.to_le_bytes());
        assert_eq!(string_bytes(&memory, 32), Err(StringError::OutOfBounds));
    }

    #[test]
    fn writes_utf16_within_bounds_only() {
        let mut memory = vec![0u8; 16];
        let len = utf16_byte_len("a😀");
        assert_eq!(len, 6);
        assert!(write_utf16(&mut memory, 4, "a😀", len).is_some());
        assert_eq!(decode_json_text(&memory[4..10]).0, "a😀");
        assert!(write_utf16(&mut memory, 12, "a😀", len).is_none());
    }

    #[test]
    fn ascii_takes_the_fast_path_with_the_same_result() {
        let text = "{\"a\":1,\"b\":[true,null,\"x y\"]}\u{7f}\u{0}";
        let len = utf16_byte_len(text);
        assert_eq!(len, text.len() * 2);
        let mut memory = vec![0u8; len + 4];
        assert!(write_utf16(&mut memory, 4, text, len).is_some());
        assert_eq!(&memory[4..], utf16(text).as_slice());
        assert_eq!(ascii_text(&memory[4..]).as_deref(), Some(text));
        assert_eq!(decode_json_text(&memory[4..]), (text.to_owned(), None));
        // One unit past ASCII anywhere, and the general path decodes it.
        assert_eq!(ascii_text(&utf16("ab\u{80}")), None);
        assert_eq!(decode_json_text(&utf16("ab\u{80}")).0, "ab\u{80}");
    }

    #[test]
    fn strips_directories_from_file_names() {
        assert_eq!(file_name("assembly/index.ts"), "index.ts");
        assert_eq!(file_name("/tmp/build/x/index.ts"), "index.ts");
        assert_eq!(file_name("C:\\src\\index.ts"), "index.ts");
        assert_eq!(file_name("index.ts"), "index.ts");
    }
}
