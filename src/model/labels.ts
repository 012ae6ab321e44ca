/**
 * The 14 NIH ChestX-ray14 findings. The default order is the seed notebook's (the order of the
 * Dense(14) head of its `pretrained_model.h5`); a model card may list them in another order, and
 * everything downstream goes by the card's order.
 */
export const NIH_LABELS = [
  "Cardiomegaly",
  "Emphysema",
  "Effusion",
  "Hernia",
  "Infiltration",
  "Mass",
  "Nodule",
  "Atelectasis",
  "Pneumothorax",
  "Pleural_Thickening",
  "Pneumonia",
  "Fibrosis",
  "Edema",
  "Consolidation",
] as const;

export type NihLabel = (typeof NIH_LABELS)[number];

export function isNihLabel(s: string): s is NihLabel {
  return (NIH_LABELS as readonly string[]).includes(s);
}

/** "Pleural_Thickening" -> "Pleural thickening": the label as people read it. */
export function displayName(label: string): string {
  const s = label.replace(/_/g, " ").toLowerCase();
  return s.charAt(0).toUpperCase() + s.slice(1);
}
