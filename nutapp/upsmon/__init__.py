"""`nutapp upsmon`: NUT's upsmon (see README.md here and nutapp.core.upsmon)."""
