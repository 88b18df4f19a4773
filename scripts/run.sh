#!/usr/bin/env bash
# Set up and run the main job: the embedded default (toy Llama, CPU, no network) end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Snakemake parses --configfile files before the workflow starts, naming neither file nor line on a
# syntax error: check them first, one line per problem.
.venv/bin/python -m quantbench.config_file "$@"
# One GPU job per GPU slot at a time (quantbench/gpu_slot.py says which GPU): Snakemake is told how
# many slots this machine has (its GPUs times the config's jobs_per_gpu), unless the command line sets
# --resources itself.
gpu_args=()
case " $* " in
  *" --resources "*|*" --res "*) ;;
  *) n=$(.venv/bin/python -c 'import sys; from quantbench.gpu_slot import slots_on_this_machine as s; print(s(sys.argv[1:]))' "$@")
     [ "$n" -gt 0 ] && gpu_args=(--resources "gpu=$n") ;;
esac
case " $* " in
  # a dry run ends with the table of what each job will request
  *" -n "*|*" --dry-run "*|*" --dryrun "*)
    .venv/bin/snakemake --cores all "${gpu_args[@]}" "$@" 2>&1 | .venv/bin/python -m quantbench.requests_table ;;
  *) .venv/bin/snakemake --cores all "${gpu_args[@]}" "$@" ;;
esac
# The real model is one flag away; say so when the default has run (not after a dry run or another setup).
case " $* " in
  *" --configfile "*|*" -n "*|*" --dry-run "*|*" --dryrun "*) ;;
  *) echo
     echo "Done: results/toy-llama/report/report.md (the toy model: it exercises the workflow in minutes)."
     echo "The same DAG on a real model, offline (SmolLM2-135M from its GGUF, WordNet text and tasks):"
     echo "    bash scripts/run.sh --configfile config/smollm2.yaml" ;;
esac
