//! The modality registry: which query token (and which controller slot) each imaging modality
//! uses. It is part of the model's config, so a saved model always knows its own modalities.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::tiling::Tiling;

/// The paper's six modalities, then CT, MR and electron microscopy, in slot order. Electron
/// microscopy has its own slot: its targets (membranes) look nothing like light microscopy's
/// (nuclei, cells), and one query token cannot learn both.
pub const BUILT_IN: [&str; 9] =
    ["dermoscopy", "x-ray", "fundus", "colonoscopy", "ultrasound", "microscopy", "ct", "mr", "electron-microscopy"];

/// Slots in a fresh model: the built-in ones plus free ones for the user's own modalities.
pub const DEFAULT_SLOTS: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModalityError {
    #[error("unknown modality {name:?}; this model knows: {known}")]
    Unknown { name: String, known: String },
    #[error("no free modality slot for {name:?}: all {slots} are taken")]
    Full { name: String, slots: usize },
    #[error("{0:?} is not a usable modality name (use letters, digits, '-' or '_')")]
    BadName(String),
}

/// Modality names → slots `0..slots`. Names are stored in a canonical lower-case form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModalityRegistry {
    /// The name of each used slot, in slot order.
    pub names: Vec<String>,
    /// How many slots the model has parameters for (used + free).
    pub slots: usize,
    /// Modalities segmented in tiles at their own resolution (thin targets), by name; the rest
    /// are segmented whole at the model's input size. Models saved before tiling have none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tiling: BTreeMap<String, Tiling>,
    /// Modalities whose model input is a fixed range of the frame's values [low, high] (modality
    /// units: Hounsfield units for CT) clipped and scaled to [0, 1], instead of each image's own
    /// min–max: CT learnt on 0–255 HU must see the same window in a DICOM's full HU range.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub input_range: BTreeMap<String, [f64; 2]>,
}

impl Default for ModalityRegistry {
    fn default() -> Self {
        Self {
            names: BUILT_IN.iter().map(|s| s.to_string()).collect(),
            slots: DEFAULT_SLOTS,
            tiling: BTreeMap::new(),
            input_range: BTreeMap::new(),
        }
    }
}

impl ModalityRegistry {
    /// The slot of `name` (aliases such as "xray", "dermatoscopy", "MRI" accepted).
    pub fn slot(&self, name: &str) -> Result<usize, ModalityError> {
        let wanted = canonical(name);
        self.names.iter().position(|n| *n == wanted).ok_or_else(|| ModalityError::Unknown {
            name: name.to_string(),
            known: self.names.join(", "),
        })
    }

    pub fn name(&self, slot: usize) -> Option<&str> {
        self.names.get(slot).map(String::as_str)
    }

    /// The slot of `name`, taking a free slot for a new modality.
    pub fn add(&mut self, name: &str) -> Result<usize, ModalityError> {
        if let Ok(slot) = self.slot(name) {
            return Ok(slot);
        }
        let canonical = canonical(name);
        if !is_usable_name(&canonical) {
            return Err(ModalityError::BadName(name.to_string()));
        }
        if self.names.len() >= self.slots {
            return Err(ModalityError::Full { name: name.to_string(), slots: self.slots });
        }
        self.names.push(canonical);
        Ok(self.names.len() - 1)
    }

    /// How modality `slot` is tiled, if it is.
    pub fn tiling(&self, slot: usize) -> Option<Tiling> {
        self.name(slot).and_then(|name| self.tiling.get(name)).copied()
    }

    /// Tiles modality `name` (which must have a slot) as `tiling`, or no longer tiles it (`None`).
    pub fn set_tiling(&mut self, name: &str, tiling: Option<Tiling>) -> Result<(), ModalityError> {
        let name = self.slot_name(name)?;
        set_or_remove(&mut self.tiling, name, tiling);
        Ok(())
    }

    /// The values modality `slot`'s input is scaled from: its fixed range, else `own` (the
    /// image's min and max).
    pub fn input_range(&self, slot: usize, own: (f64, f64)) -> (f64, f64) {
        self.fixed_input_range(slot).map_or(own, |[low, high]| (low, high))
    }

    /// Modality `slot`'s fixed input range, if it has one.
    pub fn fixed_input_range(&self, slot: usize) -> Option<[f64; 2]> {
        self.name(slot).and_then(|name| self.input_range.get(name)).copied()
    }

    /// Gives modality `name` (which must have a slot) a fixed input range, or its images' own
    /// min–max again (`None`).
    pub fn set_input_range(&mut self, name: &str, range: Option<[f64; 2]>) -> Result<(), ModalityError> {
        let name = self.slot_name(name)?;
        set_or_remove(&mut self.input_range, name, range);
        Ok(())
    }

    /// The name `name`'s slot is kept under (a modality without a slot is an error, not a new one).
    fn slot_name(&self, name: &str) -> Result<String, ModalityError> {
        self.slot(name).map(|slot| self.names[slot].clone())
    }

    pub fn free_slots(&self) -> usize {
        self.slots.saturating_sub(self.names.len())
    }
}

fn set_or_remove<T>(map: &mut BTreeMap<String, T>, name: String, value: Option<T>) {
    match value {
        Some(v) => map.insert(name, v),
        None => map.remove(&name),
    };
}

/// A canonical name a slot can take: letters, digits, '-' and '_'.
pub fn is_usable_name(canonical: &str) -> bool {
    !canonical.is_empty() && canonical.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Lower case, spaces → '-', common aliases → the registry's names.
pub fn canonical(name: &str) -> String {
    let lower = name.trim().to_lowercase().replace([' ', '_'], "-");
    let alias = match lower.as_str() {
        "xray" | "x-rays" | "radiography" | "radiograph" | "cxr" => "x-ray",
        "dermatoscopy" | "dermoscopic" | "skin" => "dermoscopy",
        "retina" | "retinal" | "fundoscopy" | "ophthalmic" => "fundus",
        "endoscopy" | "colon" | "polyp" => "colonoscopy",
        "us" | "sonography" | "echo" => "ultrasound",
        "fluorescence" | "light-microscopy" | "histology" | "pathology" => "microscopy",
        "em" | "tem" | "sem" => "electron-microscopy",
        "mri" | "mr-brain" => "mr",
        "computed-tomography" => "ct",
        other => other,
    };
    alias.to_string()
}

/// The default modality for a DICOM Modality (0008,0060) value; `None` means: ask the user.
pub fn from_dicom(tag: &str) -> Option<&'static str> {
    match tag.trim().to_ascii_uppercase().as_str() {
        "CR" | "DX" | "MG" | "RF" | "XA" | "IO" | "PX" => Some("x-ray"),
        "US" | "IVUS" => Some("ultrasound"),
        "ES" => Some("colonoscopy"),
        "OP" => Some("fundus"),
        "SM" | "GM" => Some("microscopy"),
        "XC" => Some("dermoscopy"),
        "CT" => Some("ct"),
        "MR" => Some("mr"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_aliases_and_user_slots() {
        let mut registry = ModalityRegistry::default();
        assert_eq!(registry.slot("dermoscopy"), Ok(0));
        assert_eq!(registry.slot("X-Ray"), Ok(1));
        assert_eq!(registry.slot("xray"), Ok(1));
        assert_eq!(registry.slot("MRI"), Ok(7));
        assert!(matches!(registry.slot("pet"), Err(ModalityError::Unknown { .. })));
        assert_eq!(registry.slot("EM"), Ok(8));
        assert_eq!(registry.slot("fluorescence"), Ok(5));
        assert_eq!(registry.add("PET"), Ok(9));
        assert_eq!(registry.slot("pet"), Ok(9));
        assert_eq!(registry.add("pet"), Ok(9), "adding twice re-uses the slot");
        assert!(matches!(registry.add("a/b"), Err(ModalityError::BadName(_))));
        for name in ["a", "b"] {
            registry.add(name).unwrap();
        }
        assert_eq!(registry.free_slots(), 0);
        assert!(matches!(registry.add("d"), Err(ModalityError::Full { .. })));
    }

    #[test]
    fn a_fixed_input_range_replaces_the_images_own_and_survives_the_config() {
        let mut registry = ModalityRegistry::default();
        let (ct, mr) = (registry.slot("ct").unwrap(), registry.slot("mr").unwrap());
        registry.set_input_range("CT", Some([0.0, 255.0])).unwrap();
        assert_eq!(registry.input_range(ct, (-1024.0, 3000.0)), (0.0, 255.0));
        assert_eq!(registry.input_range(mr, (3.0, 900.0)), (3.0, 900.0));
        assert!(registry.set_input_range("pet", Some([0.0, 1.0])).is_err(), "a typo is an error, not a slot");
        let json = serde_json::to_string(&registry).unwrap();
        let back: ModalityRegistry = serde_json::from_str(&json).unwrap();
        assert_eq!(back.input_range(ct, (0.0, 1.0)), (0.0, 255.0));
        registry.set_input_range("ct", None).unwrap();
        assert_eq!(registry.input_range(ct, (-1024.0, 3000.0)), (-1024.0, 3000.0));
        assert!(!serde_json::to_string(&registry).unwrap().contains("input_range"), "older readers see nothing new");
    }

    #[test]
    fn dicom_modality_defaults() {
        assert_eq!(from_dicom("DX"), Some("x-ray"));
        assert_eq!(from_dicom("us"), Some("ultrasound"));
        assert_eq!(from_dicom("OP"), Some("fundus"));
        assert_eq!(from_dicom("MR"), Some("mr"));
        assert_eq!(from_dicom("OT"), None);
        let registry = ModalityRegistry::default();
        for tag in ["CR", "DX", "MG", "RF", "XA", "US", "ES", "OP", "SM", "CT", "MR"] {
            assert!(registry.slot(from_dicom(tag).unwrap()).is_ok(), "{tag}");
        }
    }
}
