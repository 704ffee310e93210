"""Curation: find and fetch animated assets (curation.sources), join captions
(curation.captions), measure renders (measures, ssim, alpha) and decide keep / reject /
failed (config, rules, decision; the d4d-decide CLI in curation.cli). See docs/curation.md."""
