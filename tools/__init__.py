"""Course-staff tools: release generation and nbgrader plugins."""
