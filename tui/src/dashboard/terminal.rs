//! The real terminal: raw mode and the alternate screen on entry, restored on drop, on panic
//! (ratatui's panic hook) and on Ctrl-C (a key in raw mode, handled by `update`; SIGINT/SIGTERM
//! are handled by the run loop). Terminal input is read on a thread and fed in as [`Msg`]s.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event};
use tokio::sync::mpsc;

use super::model::Model;
use super::update::Msg;
use super::view::view;

/// The terminal in dashboard mode. Dropping it restores the terminal.
pub struct Terminal {
    inner: DefaultTerminal,
}

impl Terminal {
    /// Enters raw mode and the alternate screen, and installs the restoring panic hook.
    pub fn enter() -> io::Result<Self> {
        match ratatui::try_init() {
            Ok(inner) => Ok(Terminal { inner }),
            Err(e) => {
                // Raw mode may be on even though the alternate screen failed.
                ratatui::restore();
                Err(e)
            }
        }
    }

    /// (columns, rows)
    pub fn size(&self) -> io::Result<(u16, u16)> {
        let size = self.inner.size()?;
        Ok((size.width, size.height))
    }

    pub fn draw(&mut self, model: &Model) -> io::Result<()> {
        self.inner.draw(|frame| view(model, frame))?;
        Ok(())
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// The thread that reads terminal events. Stops when asked or when the receiver is gone.
pub struct Input {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Input {
    pub fn spawn(msgs: mpsc::Sender<Msg>) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("arbosync-input".to_owned())
            .spawn(move || read_events(&flag, &msgs))?;
        Ok(Input {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it (at most one poll interval).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_events(stop: &AtomicBool, msgs: &mpsc::Sender<Msg>) {
    while !stop.load(Ordering::Relaxed) {
        // Poll with a timeout so the stop flag is seen.
        match event::poll(Duration::from_millis(200)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        let msg = match event::read() {
            Ok(Event::Key(key)) => Msg::Key(key),
            Ok(Event::Resize(columns, rows)) => Msg::Resize(columns, rows),
            Ok(_) => continue,
            Err(_) => return,
        };
        if msgs.blocking_send(msg).is_err() {
            return;
        }
    }
}
