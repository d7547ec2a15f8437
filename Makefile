# `make demo` and `make test` set up .venv on first use (CPU torch via constraints.txt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo demo-mae demo-setvae demo-doppler test lint bench clean

$(BIN)/timetok: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# The whole pipeline on the bundled ETTh1, no network: budgeted in steps, so it ends alike
# on an idle or a busy machine (a few minutes on a 2-core CPU).
DEMO := runs/demo
demo: $(BIN)/timetok
	$(BIN)/timetok tokenizer train --dataset etth1 --context-points 96 --n-epochs 2 \
		--save-path $(DEMO)/tokenizer --overwrite
	$(BIN)/timetok tokenizer evaluate --model $(DEMO)/tokenizer --dataset etth1
	$(BIN)/timetok forecast pretrain --tokenizer $(DEMO)/tokenizer --dataset etth1 \
		--context-points 96 --max-horizon 96 --d-model 64 --n-layers 2 --n-heads 4 --d-ff 128 \
		--n-epochs 1 --val-stride 4 --save-path $(DEMO)/lm --overwrite
	$(BIN)/timetok forecast finetune --model $(DEMO)/lm --dataset etth1 --horizon 96 --lr 5e-4 \
		--max-steps 1000 --val-stride 4 --save-path $(DEMO)/forecaster --overwrite
	$(BIN)/timetok forecast evaluate --model $(DEMO)/forecaster --dataset etth1
	$(BIN)/timetok forecast predict --model $(DEMO)/forecaster/H96 --input etth1 --samples 100 \
		--output $(DEMO)/forecast.csv
	@echo "A demo run (context 96, one horizon). The full CPU profile, context 512 over four ETT"
	@echo "sets and four horizons, reaches mean test MSE 0.338 against PatchTST/64's published"
	@echo "0.338: python benchmarks/forecast.py --profile cpu (see benchmarks/README.md)."

# TimeMAE on the bundled UCR ECG200: pretrain, finetune, evaluate; a few CPU minutes.
MAE := runs/demo-mae
demo-mae: $(BIN)/timetok
	$(BIN)/timetok mae pretrain --dataset ecg200 --d-model 32 --n-layers 4 --d-ff 128 \
		--n-epochs 100 --save-path $(MAE)/pretrain --overwrite
	$(BIN)/timetok mae finetune --model $(MAE)/pretrain --dataset ecg200 --n-epochs 100 \
		--save-path $(MAE)/finetune --overwrite
	$(BIN)/timetok mae evaluate --model $(MAE)/finetune --dataset ecg200
	@echo "A demo run on ECG200; on UCI HAR the full benchmark reaches accuracy 0.942 (MiniRocket"
	@echo "0.974 in the same run): python benchmarks/classify.py --seeds 1,2,3."

# SeqSetVAE on the first 400 stays of PhysioNet 2012 set-a: pretrain, finetune, evaluate,
# predict; about 2 CPU minutes. The data are not bundled (20 MB, ODC-By 1.0): the files
# resolve as for every dataset (timetok data fetch physionet2012, $TIMETOK_DATA_DIR, the
# user cache), or from P12=DIR given to make.
SETVAE := runs/demo-setvae
SETVAE_DATA := $(if $(P12),--data-dir $(P12)) --sets a --limit 400
demo-setvae: $(BIN)/timetok
	$(BIN)/timetok setvae pretrain $(SETVAE_DATA) --d-model 64 --latent-dim 16 --set-layers 1 \
		--seq-layers 2 --d-ff 128 --beta-warmup-steps 50 --n-epochs 8 \
		--save-path $(SETVAE)/pretrain --overwrite
	$(BIN)/timetok setvae finetune --model $(SETVAE)/pretrain $(SETVAE_DATA) --n-epochs 8 \
		--save-path $(SETVAE)/finetune --overwrite
	$(BIN)/timetok setvae evaluate --model $(SETVAE)/finetune
	$(BIN)/timetok setvae predict --model $(SETVAE)/finetune --split 0 \
		--output $(SETVAE)/risk.csv
	@echo "A demo run on 400 stays; on all 12,000 stays the full benchmark reaches AUROC 0.869"
	@echo "(boosted trees 0.875 in the same runs): python benchmarks/physionet.py --profile cpu."

# Micro-Doppler generation on 8 simulated people (64x64): simulate, train both stages,
# generate, evaluate; a few CPU minutes, no data needed.
DOPPLER := runs/demo-doppler
demo-doppler: $(BIN)/timetok
	$(BIN)/timetok doppler simulate --users 8 --per-user 30 --size 64 --out $(DOPPLER)/data \
		--overwrite
	$(BIN)/timetok doppler train --data $(DOPPLER)/data --image-size 64 --channels 32,64,128 \
		--tokenizer-epochs 15 --prior-epochs 40 --codebook-size 256 --d-model 128 --n-layers 2 \
		--n-heads 4 --d-ff 256 --save-path $(DOPPLER)/model --overwrite
	$(BIN)/timetok doppler generate --model $(DOPPLER)/model --samples 8 --top-k 100 \
		--out $(DOPPLER)/generated --overwrite
	$(BIN)/timetok doppler evaluate --model $(DOPPLER)/model

test: $(BIN)/timetok
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: $(BIN)/timetok
	$(BIN)/python benchmarks/tokenizer.py

clean:
	rm -rf runs .pytest_cache
