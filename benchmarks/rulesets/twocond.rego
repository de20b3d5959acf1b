# The same two-condition policy as twocond.pal, for regorus.
package palisade

import rego.v1

default deny := false

deny if {
	input.tool.name == "shell.exec"
	not "admin" in input.principal.roles
}
