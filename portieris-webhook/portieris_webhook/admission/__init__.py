"""AdmissionReview in and out; workload kinds to pod specs; JSON patches."""
