package dev.guardsdk.core;

import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * The tokenizer.json of a BERT-family bundle (the default guard's all-MiniLM-L6-v2): added tokens, BertNormalizer,
 * BertPreTokenizer and the WordPiece model, each following Hugging Face tokenizers to the token, so ids match
 * the Python runtime exactly (the shared test vectors check that). Written here because no tokenizer library
 * for Android reads tokenizer.json without native code; any other model type is refused by name.
 */
public final class WordPieceTokenizer {
  private final Map<String, Integer> vocab = new HashMap<>();
  private final Map<String, Integer> addedIds = new HashMap<>();
  private final int unkId;
  private final String prefix;
  private final int maxInputCharsPerWord;
  private final boolean cleanText;
  private final boolean chineseChars;
  private final boolean stripAccents;
  private final boolean lowercase;
  private final List<AddedToken> rawAdded = new ArrayList<>();
  private final List<AddedToken> normalizedAdded = new ArrayList<>();
  /** The post-processor's layouts: special tokens around one text, and around a pair. */
  public final SpecialTemplate single;
  public final SpecialTemplate pair;

  /** An added token: matched in the text before the model sees it, as tokenizers' AddedVocabulary does. */
  private static final class AddedToken {
    final String content;
    final int id;
    final boolean singleWord;
    final boolean lstrip;
    final boolean rstrip;

    AddedToken(JSONObject t, String content) throws JSONException {
      this.content = content;
      id = t.getInt("id");
      singleWord = t.optBoolean("single_word", false);
      lstrip = t.optBoolean("lstrip", false);
      rstrip = t.optBoolean("rstrip", false);
    }
  }

  private WordPieceTokenizer(JSONObject json) throws JSONException, GuardException {
    JSONObject model = json.getJSONObject("model");
    String type = model.optString("type", "");
    if (!type.equals("WordPiece")) {
      throw unsupported("its model is " + (type.isEmpty() ? "untyped" : type)
          + (type.equals("Unigram") ? " (DeBERTa-v3's SentencePiece vocabulary)" : "")
          + "; this app tokenizes WordPiece (BERT, MiniLM) only: export a WordPiece guard for the phone,"
          + " or run this bundle with the Python runtime");
    }
    JSONObject words = model.getJSONObject("vocab");
    for (Iterator<String> it = words.keys(); it.hasNext(); ) {
      String token = it.next();
      vocab.put(token, words.getInt(token));
    }
    String unk = model.getString("unk_token");
    if (!vocab.containsKey(unk)) {
      throw unsupported("its unk_token " + unk + " is not in the vocabulary");
    }
    unkId = vocab.get(unk);
    prefix = model.optString("continuing_subword_prefix", "##");
    maxInputCharsPerWord = model.optInt("max_input_chars_per_word", 100);

    JSONObject norm = json.isNull("normalizer") ? null : json.getJSONObject("normalizer");
    if (norm == null || !norm.getString("type").equals("BertNormalizer")) {
      throw unsupported("its normalizer is " + (norm == null ? "none" : norm.getString("type"))
          + "; a WordPiece bundle here needs BertNormalizer");
    }
    cleanText = norm.optBoolean("clean_text", true);
    chineseChars = norm.optBoolean("handle_chinese_chars", true);
    lowercase = norm.optBoolean("lowercase", true);
    stripAccents = norm.isNull("strip_accents") ? lowercase : norm.getBoolean("strip_accents");
    JSONObject pre = json.isNull("pre_tokenizer") ? null : json.getJSONObject("pre_tokenizer");
    if (pre == null || !pre.getString("type").equals("BertPreTokenizer")) {
      throw unsupported("its pre-tokenizer is " + (pre == null ? "none" : pre.getString("type"))
          + "; a WordPiece bundle here needs BertPreTokenizer");
    }
    JSONArray added = json.optJSONArray("added_tokens");
    for (int i = 0; added != null && i < added.length(); i++) {
      JSONObject t = added.getJSONObject(i);
      addedIds.put(t.getString("content"), t.getInt("id"));
      boolean normalized = t.optBoolean("normalized", false);
      // a normalized token is matched in the normalized text by its normalized content, as tokenizers does
      String content = normalized ? normalize(t.getString("content")) : t.getString("content");
      if (content.isEmpty()) {
        continue;  // tokenizers skips an empty added token (matched, it would never move past it)
      }
      (normalized ? normalizedAdded : rawAdded).add(new AddedToken(t, content));
    }
    JSONObject post = json.isNull("post_processor") ? null : json.getJSONObject("post_processor");
    single = SpecialTemplate.of(post, false);
    pair = SpecialTemplate.of(post, true);
  }

  /** Parses tokenizer.json text. */
  public static WordPieceTokenizer parse(String json) throws GuardException {
    try {
      return new WordPieceTokenizer(new JSONObject(json));
    } catch (JSONException e) {
      throw new GuardException(GuardException.Reason.MANIFEST, "tokenizer.json is malformed: " + e.getMessage(), e);
    }
  }

  /** Parses the bytes of a tokenizer.json (verified against guard.json first: FileEntry.verifiedBytes). */
  public static WordPieceTokenizer parse(byte[] json) throws GuardException {
    return parse(new String(json, StandardCharsets.UTF_8));
  }

  /** The id of {@code token} (an added token's first, else the vocabulary's), or null: tokenizers' token_to_id. */
  public Integer tokenId(String token) {
    return addedIds.containsKey(token) ? addedIds.get(token) : vocab.get(token);
  }

  /** Token ids of {@code text} without special tokens (tokenizers' encode with add_special_tokens=False). */
  public int[] encode(String text) {
    List<Integer> ids = new ArrayList<>();
    for (Object piece : splitOnAdded(text, rawAdded)) {
      if (piece instanceof AddedToken) {
        ids.add(((AddedToken) piece).id);
        continue;
      }
      for (Object part : splitOnAdded(normalize((String) piece), normalizedAdded)) {
        if (part instanceof AddedToken) {
          ids.add(((AddedToken) part).id);
        } else {
          for (String word : preTokenize((String) part)) {
            wordPiece(word, ids);
          }
        }
      }
    }
    int[] out = new int[ids.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = ids.get(i);
    }
    return out;
  }

  /**
   * {@code text} cut around the added tokens found in it, leftmost first and longest at a place, as a list of
   * Strings and AddedTokens; lstrip and rstrip swallow the whitespace beside a token, single_word needs a word
   * boundary on both sides.
   */
  private static List<Object> splitOnAdded(String text, List<AddedToken> tokens) {
    List<Object> out = new ArrayList<>();
    int last = 0;
    int i = 0;
    while (i < text.length() && !tokens.isEmpty()) {
      AddedToken best = null;
      for (AddedToken t : tokens) {
        if (text.startsWith(t.content, i) && (best == null || t.content.length() > best.content.length())
            && (!t.singleWord || isWordBoundary(text, i, i + t.content.length()))) {
          best = t;
        }
      }
      if (best == null) {
        i += Character.charCount(text.codePointAt(i));
        continue;
      }
      int start = i;
      int end = i + best.content.length();
      if (best.lstrip) {
        while (start > last && isWhitespace(text.codePointBefore(start))) {
          start -= Character.charCount(text.codePointBefore(start));
        }
      }
      if (best.rstrip) {
        while (end < text.length() && isWhitespace(text.codePointAt(end))) {
          end += Character.charCount(text.codePointAt(end));
        }
      }
      if (start > last) {
        out.add(text.substring(last, start));
      }
      out.add(best);
      last = end;
      i = end;
    }
    if (last < text.length()) {
      out.add(text.substring(last));
    }
    return out;
  }

  private static boolean isWordBoundary(String text, int start, int end) {
    boolean before = start == 0 || !isWordChar(text.codePointBefore(start));
    boolean after = end == text.length() || !isWordChar(text.codePointAt(end));
    return before && after;
  }

  private static boolean isWordChar(int cp) {
    return Character.isLetterOrDigit(cp) || cp == '_';
  }

  /** BertNormalizer: clean text, space out CJK characters, strip accents, lowercase, in tokenizers' order. */
  String normalize(String text) {
    StringBuilder out = new StringBuilder(text.length());
    text.codePoints().forEach(cp -> {
      if (cleanText && (cp == 0 || cp == 0xFFFD || isControl(cp))) {
        return;
      }
      if (cleanText && isWhitespace(cp)) {
        out.append(' ');
      } else if (chineseChars && isChinese(cp)) {
        out.append(' ').appendCodePoint(cp).append(' ');
      } else {
        out.appendCodePoint(cp);
      }
    });
    String s = out.toString();
    if (stripAccents) {
      StringBuilder kept = new StringBuilder(s.length());
      Normalizer.normalize(s, Normalizer.Form.NFD).codePoints()
          .filter(cp -> Character.getType(cp) != Character.NON_SPACING_MARK)
          .forEach(kept::appendCodePoint);
      s = kept.toString();
    }
    if (lowercase) {
      // One code point at a time, as Rust's char::to_lowercase: no final-sigma context.
      StringBuilder lower = new StringBuilder(s.length());
      s.codePoints().forEach(cp -> lower.append(new String(Character.toChars(cp)).toLowerCase(Locale.ROOT)));
      s = lower.toString();
    }
    return s;
  }

  /** BertPreTokenizer: split on whitespace (dropped) and around each punctuation character (kept alone). */
  static List<String> preTokenize(String text) {
    List<String> words = new ArrayList<>();
    StringBuilder word = new StringBuilder();
    text.codePoints().forEach(cp -> {
      if (isWhitespace(cp) || isPunctuation(cp)) {
        if (word.length() > 0) {
          words.add(word.toString());
          word.setLength(0);
        }
        if (!isWhitespace(cp)) {
          words.add(new String(Character.toChars(cp)));
        }
      } else {
        word.appendCodePoint(cp);
      }
    });
    if (word.length() > 0) {
      words.add(word.toString());
    }
    return words;
  }

  /** Greedy longest-match-first WordPiece; a word with any piece out of the vocabulary is one unk token. */
  private void wordPiece(String word, List<Integer> ids) {
    if (word.codePointCount(0, word.length()) > maxInputCharsPerWord) {
      ids.add(unkId);
      return;
    }
    List<Integer> pieces = new ArrayList<>();
    int start = 0;
    while (start < word.length()) {
      int end = word.length();
      Integer found = null;
      while (start < end) {
        String sub = start > 0 ? prefix + word.substring(start, end) : word.substring(start, end);
        found = vocab.get(sub);
        if (found != null) {
          break;
        }
        end -= Character.charCount(word.codePointBefore(end));
      }
      if (found == null) {
        ids.add(unkId);
        return;
      }
      pieces.add(found);
      start = end;
    }
    ids.addAll(pieces);
  }

  /** Rust's char::is_whitespace (Unicode White_Space), which Java's Character.isWhitespace is not. */
  static boolean isWhitespace(int cp) {
    switch (cp) {
      case '\t': case '\n': case 0x0B: case 0x0C: case '\r': case ' ': case 0x85: case 0xA0: case 0x1680:
      case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return true;
      default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
  }

  /** tokenizers' is_control: Unicode "other" categories less \t, \n and \r (unassigned code points are kept). */
  static boolean isControl(int cp) {
    if (cp == '\t' || cp == '\n' || cp == '\r') {
      return false;
    }
    int type = Character.getType(cp);
    return type == Character.CONTROL || type == Character.FORMAT || type == Character.PRIVATE_USE
        || type == Character.SURROGATE;
  }

  /** ASCII punctuation (which counts $+<=>^`| too) and Unicode punctuation (P*), as BertPreTokenizer. */
  static boolean isPunctuation(int cp) {
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) {
      return true;
    }
    switch (Character.getType(cp)) {
      case Character.CONNECTOR_PUNCTUATION: case Character.DASH_PUNCTUATION: case Character.START_PUNCTUATION:
      case Character.END_PUNCTUATION: case Character.INITIAL_QUOTE_PUNCTUATION:
      case Character.FINAL_QUOTE_PUNCTUATION: case Character.OTHER_PUNCTUATION:
        return true;
      default:
        return false;
    }
  }

  /** The CJK ideograph blocks BertNormalizer pads with spaces. */
  static boolean isChinese(int cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF)
        || (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF)
        || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
  }

  private static GuardException unsupported(String why) {
    return new GuardException(
        GuardException.Reason.UNSUPPORTED_TOKENIZER, "tokenizer.json cannot be read here: " + why);
  }
}
