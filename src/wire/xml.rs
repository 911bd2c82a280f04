//! placeholder until the xml module lands: minimal Sink used by description.rs.
use super::Result;
/// Byte sink.
pub trait Sink {
    /// Appends bytes.
    fn put(&mut self, bytes: &[u8]) -> Result<()>;
    /// Appends a string.
    fn put_str(&mut self, text: &str) -> Result<()> {
        self.put(text.as_bytes())
    }
    /// Appends escaped text.
    fn put_escaped(&mut self, text: &str) -> Result<()> {
        for c in text.chars() {
            match c {
                '&' => self.put_str("&amp;")?,
                '<' => self.put_str("&lt;")?,
                '>' => self.put_str("&gt;")?,
                '"' => self.put_str("&quot;")?,
                '\'' => self.put_str("&apos;")?,
                c => self.put_str(c.encode_utf8(&mut [0; 4]))?,
            }
        }
        Ok(())
    }
}
impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}
