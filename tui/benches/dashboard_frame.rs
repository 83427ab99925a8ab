//! View benchmark: the median time to draw one frame of the dashboard with 1,000 employers
//! (target: under 5 ms). Draws into ratatui's `TestBackend`, so the figure is `view()` plus the
//! terminal's buffer diff, without the cost of writing to a real tty.
//!
//! `cargo bench -p arbosync-tui --bench dashboard_frame` (optimised), or
//! `cargo test -p arbosync-tui --bench dashboard_frame` (debug build, slower).

use std::time::{Duration, Instant};

use arbosync_tui::dashboard::fixtures;
use arbosync_tui::dashboard::model::{Back, Model, Screen};
use arbosync_tui::dashboard::view::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const EMPLOYERS: usize = 1000;
const FRAMES: usize = 300;
const TARGET: Duration = Duration::from_millis(5);

fn median_frame(model: &mut Model, width: u16, height: u16) -> (Duration, Duration) {
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(t) => t,
        Err(e) => panic!("test backend: {e}"),
    };
    model.size = (width, height);
    let mut times = Vec::with_capacity(FRAMES);
    for i in 0..FRAMES {
        // Move the selection so every frame differs, as when an operator scrolls.
        model.overview.selected = (i * 7) % EMPLOYERS;
        model.overview.offset = model.overview.selected.saturating_sub(5);
        let start = Instant::now();
        if let Err(e) = terminal.draw(|f| view(model, f)) {
            panic!("draw: {e}");
        }
        times.push(start.elapsed());
    }
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

fn main() {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let mut model = fixtures::model();
    model.apply_snapshot(fixtures::large_snapshot(EMPLOYERS));
    println!("dashboard view, {EMPLOYERS} employers, {FRAMES} frames, {profile} build");
    let mut worst = Duration::ZERO;
    let cases: [(&str, Screen, &str); 4] = [
        ("overview", Screen::Overview, ""),
        ("overview filtered", Screen::Overview, "00"),
        ("errors", Screen::Errors, ""),
        (
            "detail",
            Screen::Detail {
                employer: model.employers[3].id,
                from: Back::Overview,
            },
            "",
        ),
    ];
    for (name, screen, filter) in cases {
        for (w, h) in [(80, 24), (160, 48)] {
            model.screen = screen;
            model.overview.filter = filter.to_owned();
            let (median, p99) = median_frame(&mut model, w, h);
            worst = worst.max(median);
            println!(
                "  {name:<18} {w:>3}x{h:<3} median {:>8.3} ms   p99 {:>8.3} ms",
                median.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }
    }
    let verdict = if worst < TARGET { "under" } else { "OVER" };
    println!(
        "worst median {:.3} ms: {verdict} the {} ms target",
        worst.as_secs_f64() * 1e3,
        TARGET.as_millis()
    );
}
