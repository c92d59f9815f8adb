# Cluster rehearsals (label `cluster`, docs/hpc.md): scripts that run the shardtune binary across
# two network namespaces acting as nodes (mpirun over TCP) and under a one-machine Slurm cluster.
# They run shardtune_hooked (its test hooks pause a checkpoint write while a node is killed). They
# need root and exit 77 (reported as skipped, with the reason in the output) where network
# namespaces cannot be created or Slurm cannot be installed. RUN_SERIAL: they start daemons and
# 4-rank jobs and would only slow each other down.
add_test(NAME cluster_multinode_rehearsal
         COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/multinode_rehearsal.sh $<TARGET_FILE:shardtune_hooked>)
add_test(NAME cluster_slurm_rehearsal
         COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/slurm_rehearsal.sh $<TARGET_FILE:shardtune_hooked>)
set_tests_properties(cluster_multinode_rehearsal cluster_slurm_rehearsal PROPERTIES
                     LABELS cluster SKIP_RETURN_CODE 77 TIMEOUT 600 RUN_SERIAL TRUE)
