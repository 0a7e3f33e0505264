//! Lower-case hex encoding, and a decoder that tolerates the `:` separators
//! people paste from fingerprints.

/// Encodes bytes as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Encodes bytes as upper-case hex pairs separated by `:`, the way
/// certificate fingerprints are usually shown.
pub fn fingerprint(bytes: &[u8]) -> String {
    encode(bytes)
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(":")
}

/// Decodes hex (either case), ignoring `:`, `-` and whitespace separators.
/// Returns `None` for any other character or an odd number of digits.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|c| !matches!(c, b':' | b'-' | b' ' | b'\t' | b'\n' | b'\r'))
        .map(|c| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    Some(digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// Decodes hex into a fixed-size array.
pub fn decode_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    decode(s)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_separators() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(encode(&b), "0001abff");
        assert_eq!(fingerprint(&b), "00:01:AB:FF");
        assert_eq!(decode("00:01:AB:ff").as_deref(), Some(&b[..]));
        assert_eq!(decode("0g"), None);
        assert_eq!(decode("abc"), None);
    }
}
