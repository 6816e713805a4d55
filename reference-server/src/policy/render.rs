//! Rendering for reasons without intermediate strings: a reason names up to
//! a handful of policies and conditions, and copying each value to render it
//! used to cost more than the decision itself.

use std::fmt::{self, Display, Write};
use std::io;

use serde::Serialize;

/// Longest rendering (in characters) of a JSON value or name inside a reason.
pub(crate) const MAX_RENDERED: usize = 120;

/// Displays its value cut to at most [`MAX_RENDERED`] characters with a
/// trailing ellipsis, exactly as [`truncate`](crate::policy::rules::truncate)
/// cuts the value's full rendering, but writing only what is kept.
pub(crate) struct Cut<T>(pub T);

impl<T: Display> Display for Cut<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut limited = Limited {
            out: f,
            left: MAX_RENDERED,
            cut: false,
        };
        match write!(limited, "{}", self.0) {
            Err(_) if limited.cut => f.write_char('…'),
            other => other,
        }
    }
}

/// Passes on up to `left` characters, then fails (to stop the rendering)
/// and remembers that it cut.
struct Limited<'a, 'b> {
    out: &'a mut fmt::Formatter<'b>,
    left: usize,
    cut: bool,
}

impl Write for Limited<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match s.char_indices().nth(self.left) {
            None => {
                self.left -= s.chars().count();
                self.out.write_str(s)
            }
            Some((at, _)) => {
                self.out.write_str(&s[..at])?;
                self.left = 0;
                self.cut = true;
                Err(fmt::Error)
            }
        }
    }
}

/// Displays its value as compact JSON, as `serde_json::Value`'s `Display` does.
pub(crate) struct Json<T>(pub T);

impl<T: Serialize> Display for Json<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        serde_json::to_writer(Utf8Writer(f), &self.0).map_err(|_| fmt::Error)
    }
}

/// An `io::Write` over a formatter. serde_json writes whole UTF-8 sequences
/// (it splits strings only at the ASCII characters it escapes).
struct Utf8Writer<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl io::Write for Utf8Writer<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let s =
            std::str::from_utf8(buf).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        self.0
            .write_str(s)
            .map_err(|_| io::Error::from(io::ErrorKind::Other))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
