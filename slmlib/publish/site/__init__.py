"""The static site of the publish stage (`reports/site/`), in small pieces.

`data` turns the registry into what the pages show; `evidence` reads a model's run folders
(card, provenance, worst items, report and log links); `reference` builds the methodology and
submit content from the code's own constants and schema; `html`, `pages`, `model_page` and
`quantization_section` (the table of a model's quantizations) render escaped HTML; `assets/` holds
the CSS and JavaScript copied into the site; `browser` and `screenshots` drive Debian's
Chromium for the browser tests and the screenshots. `slmlib.publish.write_site` writes it all.
"""
