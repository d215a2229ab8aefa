//! The controlling terminal. Prompts go here rather than to stdout/stderr because
//! under `credential_process` the SDK owns both: `/dev/tty` is the only way to
//! reach the person. Without one, callers fail at once instead of hanging.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};

use secrecy::SecretString;
use zeroize::Zeroizing;

pub struct Tty {
    file: File,
}

impl Tty {
    /// Fails with ENXIO straight away when the process has no controlling terminal.
    pub fn open() -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open("/dev/tty")?;
        Ok(Self { file })
    }

    pub fn available() -> bool {
        Self::open().is_ok()
    }

    pub fn file(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    pub fn say(&mut self, msg: &str) -> io::Result<()> {
        self.file.write_all(msg.as_bytes())?;
        self.file.flush()
    }

    /// Reads one line; with `echo` false the terminal does not show what is typed.
    pub fn ask(&mut self, prompt: &str, echo: bool) -> io::Result<SecretString> {
        self.say(prompt)?;
        let _guard = if echo {
            None
        } else {
            Some(EchoOff::new(&self.file)?)
        };
        let line = self.read_line();
        if !echo {
            // The newline the user typed was not echoed either.
            let _ = self.say("\n");
        }
        line
    }

    /// Byte by byte, so nothing past the newline is consumed from the terminal.
    fn read_line(&mut self) -> io::Result<SecretString> {
        let mut buf = Zeroizing::new(Vec::with_capacity(128));
        let mut byte = [0u8; 1];
        loop {
            match self.file.read(&mut byte) {
                Ok(0) if buf.is_empty() => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the terminal closed",
                    ));
                }
                Ok(0) => break,
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) if byte[0] == b'\r' => {}
                Ok(_) => buf.push(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let text = String::from_utf8(std::mem::take(&mut *buf))
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "input is not UTF-8"))?;
        Ok(SecretString::from(text))
    }
}

/// Restores the terminal's echo flag when dropped, error paths included.
struct EchoOff {
    fd: RawFd,
    saved: libc::termios,
}

impl EchoOff {
    fn new(file: &File) -> io::Result<Self> {
        let fd = file.as_raw_fd();
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd, saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}
