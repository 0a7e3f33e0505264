//! Takes the terminal as the full-screen console does, draws, and panics:
//! for the test that the terminal is given back and the panic's message
//! is readable (`tests/terminal_restored.rs`).
#![forbid(unsafe_code)]

fn main() {
    let screen = lifeline_tech_console::terminal::Screen::enter(true);
    println!("on the alternate screen");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _keep = screen;
    panic!("something went wrong in the console");
}
