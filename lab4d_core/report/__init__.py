"""Results pages: training curves and a self-contained HTML page per dataset."""
