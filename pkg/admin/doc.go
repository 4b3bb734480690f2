// Package admin holds the logic of qmail's administration tools and the
// project's hold flag files:
//
//   - hold.go: parsing and matching control/holdlocal and control/holdremote
//     (all destinations, or a list of domains);
//   - newmrh.go: qmail-newmrh, control/morercpthosts to morercpthosts.cdb;
//   - pw2u.go: qmail-pw2u, a passwd file to users/assign lines;
//   - showctl.go: qmail-showctl, the settings and control files of a tree.
package admin
