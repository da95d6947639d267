"""Study infrastructure: parameters, paths, results files, subjects, the notebook pipeline, figures."""
