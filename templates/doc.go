// Package templates embeds fedhub's HTML templates and static assets and renders
// the pages that the other packages fill with data.
package templates
