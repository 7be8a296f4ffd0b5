#!/usr/bin/env bash
# Built-in minimal pairs for the lab (app/public/presets/): each word or phrase spoken by
# espeak-ng (en-us), converted by sox to 16 kHz mono 16-bit PCM WAV, silence trimmed at both
# ends with 50 ms kept, so the clips are small and the encoder's time bins cover speech.
# The list of pairs (ids, texts, the sound that differs) is written to app/presets-index.json (imported by the app).
#
#   bash tools/presets/make-presets.sh          # needs espeak-ng and sox (apt-get install espeak-ng sox)
#
# Output is deterministic for a given espeak-ng version; the WAVs are committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=app/public/presets
for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || { echo "make-presets: $tool is missing (apt-get install espeak-ng sox)" >&2; exit 1; }
done
mkdir -p "$OUT"
rm -f "$OUT"/*.wav

# id | clean text | corrupted text | what differs
PAIRS=(
  "bat-pat|bat|pat|voicing of the first stop: /b/ vs /p/"
  "pin-bin|pin|bin|voicing of the first stop: /p/ vs /b/"
  "cat-cap|the cat sat|the cap sat|place of the final stop: /t/ vs /p/, mid-sentence"
  "ship-sip|ship|sip|fricative place: /ʃ/ vs /s/"
  "fan-van|fan|van|fricative voicing: /f/ vs /v/"
  "dime-time|dime|time|voicing of the first stop: /d/ vs /t/"
  "sue-zoo|sue|zoo|fricative voicing: /s/ vs /z/"
  "gate-kate|gate|Kate|voicing of the first stop: /g/ vs /k/"
  "light-right|light|right|liquid: /l/ vs /r/"
  "thin-tin|thin|tin|fricative vs stop: /θ/ vs /t/"
)

say() { # text → 16 kHz mono PCM16 WAV, silence trimmed
  local text=$1 out=$2 tmp
  tmp=$(mktemp --suffix .wav)
  espeak-ng -v en-us -s 150 -w "$tmp" "$text"
  sox "$tmp" -r 16000 -c 1 -b 16 "$out" silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse pad 0.05 0.05
  rm -f "$tmp"
}

json='{"version":1,"generator":"tools/presets/make-presets.sh (espeak-ng en-us, sox)","pairs":['
first=1
for line in "${PAIRS[@]}"; do
  IFS='|' read -r id clean corrupt differs <<<"$line"
  say "$clean" "$OUT/$id.clean.wav"
  say "$corrupt" "$OUT/$id.corrupt.wav"
  [ $first = 1 ] || json+=','
  first=0
  json+="{\"id\":\"$id\",\"clean\":\"$clean\",\"corrupt\":\"$corrupt\",\"differs\":\"$differs\"}"
done
json+=']}'
printf '%s\n' "$json" >app/presets-index.json
echo "make-presets: wrote ${#PAIRS[@]} pairs to $OUT ($(du -sh "$OUT" | cut -f1))"
