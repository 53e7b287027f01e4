//! The web UI's assets (src/daemon/ui/), built into the binary: no CDN, no files to
//! install beside it.

/// `/`.
pub(crate) const INDEX_HTML: &str = include_str!("ui/index.html");
/// `/app.js`.
pub(crate) const APP_JS: &str = include_str!("ui/app.js");
/// `/app.css`.
pub(crate) const APP_CSS: &str = include_str!("ui/app.css");
