# devattest example Appraisal Policy (Rego v1). See docs/policy.md for the input document
# and the decision document this policy must return.
#
# It allows the Evidence when
#   * no trustworthiness claim is contraindicated,
#   * the Reference Values were found and matched, and
#   * the attestation key is hardware-backed, or its authority is a manufacturer;
# and it lowers "executables" to 33 (unrecognized runtime) when a software component
# carries no signer ID.
package devattest

import rego.v1

default allow := false

contraindicated contains claim if {
	some claim, value in input.trust_vector
	value >= 96
}

contraindicated contains claim if {
	some claim, value in input.trust_vector
	value <= -97
}

trusted_key if input.key.hardware_backed

trusted_key if startswith(input.key.authority, "manufacturer:")

unsigned_components contains c.measurement_type if {
	some c in input.software_components
	c.signer_id == null
}

allow if {
	count(contraindicated) == 0
	input.reference_values_matched
	trusted_key
}

reasons contains sprintf("%s is contraindicated", [claim]) if {
	some claim in contraindicated
}

reasons contains "the Reference Values were not found or not matched" if {
	not input.reference_values_matched
}

reasons contains "the attestation key is neither hardware-backed nor vouched for by a manufacturer" if {
	not trusted_key
}

trust_vector := object.union(input.trust_vector, {"executables": 33}) if {
	count(unsigned_components) > 0
	input.trust_vector.executables == 2
} else := input.trust_vector

decision := {
	"allow": allow,
	"reasons": reasons,
	"trust_vector": trust_vector,
}
