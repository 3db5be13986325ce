// Package config owns fedhub's YAML configuration: its schema, defaults, ${ENV}
// expansion and validation. Every error names the key and the line it came from,
// and unknown keys are errors, so a typo never silently becomes a default.
package config
