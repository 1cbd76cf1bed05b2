//! `credit-node serve` as a child process, for the tests that kill a node with SIGKILL.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};

/// `credit-node serve` as a child process; killed with SIGKILL when dropped.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Proc {
    /// Starts the node and waits for the `... listening on ADDR` line.
    pub fn serve(config: &Path) -> Proc {
        let mut child = super::bin()
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let line = first_line(&mut child);
        assert!(
            line.contains("listening on"),
            "unexpected first line {line:?}"
        );
        let addr = listening_on(&line).parse().unwrap();
        Proc { child, addr }
    }

    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// SIGKILL, and wait until the process is gone (its sled lock with it).
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Killing a process already reaped is not an error; a drop must not panic anyway.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first line `child` prints on its (piped) stdout. The rest is read on a thread, so
/// a later line never meets a closed pipe.
pub fn first_line(child: &mut Child) -> String {
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    std::thread::spawn(move || for _ in stdout.lines() {});
    line
}

/// The address at the end of a `... listening on ADDR` line.
pub fn listening_on(line: &str) -> &str {
    line.trim().rsplit(' ').next().unwrap()
}
