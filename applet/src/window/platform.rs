//! What differs between desktops: whether there is one to open a window
//! on, and how the window is drawn. Linux is built and tested here;
//! Windows and macOS are gated at compile time (see the README on building
//! them).

/// Whether a desktop is there to open a window on. On Linux and the BSDs
/// that is an X11 display (Wayland desktops run X11 programs through
/// XWayland and set `DISPLAY` for them); Windows and macOS always have
/// one.
pub fn has_display() -> bool {
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
    }
    #[cfg(not(all(unix, not(target_os = "macos"))))]
    {
        true
    }
}

/// How the window is drawn: OpenGL (on a Linux computer without a graphics
/// driver, Mesa's software rasterizer), or with the `wgpu` feature — for
/// Windows, whose own OpenGL 1.1 is too old — DirectX 12, Metal or Vulkan,
/// each with a software fallback where the system has one (WARP on
/// Windows).
pub fn renderer() -> eframe::Renderer {
    #[cfg(feature = "wgpu")]
    {
        eframe::Renderer::Wgpu
    }
    #[cfg(not(feature = "wgpu"))]
    {
        eframe::Renderer::Glow
    }
}
