//! Printer profiles: paper geometry, code-page numbers and capabilities of a
//! printer model, kept as TOML data under `drivers/profiles/` and compiled
//! into the crate.

use serde::{Deserialize, Serialize};

use crate::printer::document::PaperWidth;

/// What the printer's cutter can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CutSupport {
    /// Full and partial cuts.
    Full,
    /// Partial cuts only (a full-cut request becomes a partial cut).
    Partial,
    /// No cutter: a cut request feeds paper to tear off instead.
    None,
}

/// Code-page numbers for `ESC t n` (or Star's `ESC GS t n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodePages {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cp866: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cp1251: Option<u8>,
}

/// Geometry of one paper width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperSpec {
    /// Printable dots per line (raster images are scaled down to this).
    pub dots_per_line: u16,
    /// Characters per line in font A (12×24), used for layout.
    pub font_a_columns: u16,
    /// Characters per line in font B (9×17).
    pub font_b_columns: u16,
}

/// Geometry for both paper widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Papers {
    pub mm58: PaperSpec,
    pub mm80: PaperSpec,
}

/// A printer model's capabilities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short identifier, e.g. `epson-tm-t20`.
    pub name: String,
    pub vendor: String,
    /// Free text: which models the profile covers.
    #[serde(default)]
    pub models: String,
    pub dpi: u16,
    /// The printer renders QR codes itself (`GS ( k`); otherwise QR codes
    /// are sent as raster images.
    pub native_qr: bool,
    pub cut: CutSupport,
    /// The printer answers `DLE EOT n` status requests.
    pub status_reply: bool,
    /// Star printers in ESC/POS emulation select code pages with
    /// `ESC GS t n` instead of `ESC t n`.
    #[serde(default)]
    pub star_codepage_command: bool,
    #[serde(default)]
    pub code_pages: CodePages,
    pub paper: Papers,
}

/// A profile that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("profile is not valid TOML: {0}")]
    Toml(String),
    #[error("profile field {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

const BUILTIN: &[(&str, &str)] = &[
    (
        "generic-58",
        include_str!("../../../profiles/generic-58.toml"),
    ),
    (
        "generic-80",
        include_str!("../../../profiles/generic-80.toml"),
    ),
    (
        "epson-tm-t20",
        include_str!("../../../profiles/epson-tm-t20.toml"),
    ),
    (
        "epson-tm-t88",
        include_str!("../../../profiles/epson-tm-t88.toml"),
    ),
    ("xprinter", include_str!("../../../profiles/xprinter.toml")),
    ("pos-5890", include_str!("../../../profiles/pos-5890.toml")),
    ("rongta", include_str!("../../../profiles/rongta.toml")),
    ("star", include_str!("../../../profiles/star.toml")),
];

impl Profile {
    /// Names of the built-in profiles.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(n, _)| *n)
    }

    /// A built-in profile by name (`generic-58`, `generic-80`,
    /// `epson-tm-t20`, `epson-tm-t88`, `xprinter`, `pos-5890`, `rongta`,
    /// `star`).
    pub fn builtin(name: &str) -> Option<Profile> {
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, src)| Profile::from_toml(src).ok())
    }

    /// All built-in profiles.
    pub fn all() -> Vec<Profile> {
        BUILTIN
            .iter()
            .filter_map(|(_, src)| Profile::from_toml(src).ok())
            .collect()
    }

    /// Parse and check a profile (a technician's custom one, say).
    /// Unknown fields are rejected.
    pub fn from_toml(src: &str) -> Result<Profile, ProfileError> {
        let p: Profile = toml::from_str(src).map_err(|e| ProfileError::Toml(e.to_string()))?;
        p.check()?;
        Ok(p)
    }

    fn check(&self) -> Result<(), ProfileError> {
        let bad = |field, message: &str| {
            Err(ProfileError::Invalid {
                field,
                message: message.to_string(),
            })
        };
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty");
        }
        if !(50..=1200).contains(&self.dpi) {
            return bad("dpi", "must be 50..=1200");
        }
        for (field, spec) in [
            ("paper.mm58", &self.paper.mm58),
            ("paper.mm80", &self.paper.mm80),
        ] {
            if !(64..=4096).contains(&spec.dots_per_line) {
                return bad(field, "dots_per_line must be 64..=4096");
            }
            if !(8..=255).contains(&spec.font_a_columns)
                || !(8..=255).contains(&spec.font_b_columns)
            {
                return bad(field, "columns must be 8..=255");
            }
        }
        Ok(())
    }

    /// Geometry for a paper width.
    pub fn paper(&self, width: PaperWidth) -> &PaperSpec {
        match width {
            PaperWidth::Mm58 => &self.paper.mm58,
            PaperWidth::Mm80 => &self.paper.mm80,
        }
    }
}
