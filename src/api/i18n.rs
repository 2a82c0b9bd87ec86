//! The cashier's language for JSON-RPC errors: the Russian text of every
//! error a POS shows the cashier (the ledger's 2xxx codes and the devices'
//! 12xx/13xx), keyed by code. The English text is the error's own message;
//! [`localize`] puts the configured language in `message` and both in
//! `data.message_en` / `data.message_ru`.

use serde_json::{Value, json};

use crate::api::rpc::{RpcError, code};
use crate::config::Language;

/// The Russian text for `code`; `{name}` is filled from the error's
/// `data.name`. `None` for codes the cashier does not see (protocol,
/// login, internal).
pub fn russian(c: i64) -> Option<&'static str> {
    Some(match c {
        code::DEVICE_NOT_FOUND => "устройство не найдено или не подключено",
        code::JOB_CONFLICT => "задание с этим ключом уже есть, с другими данными",
        code::JOB_NOT_FOUND => "задание не найдено",
        code::JOB_NOT_CANCELLABLE => "задание уже нельзя отменить",
        code::FISCAL_DEVICE_ERROR => "фискальный регистратор отказал: {meaning}",
        code::FISCAL_IN_PROGRESS => "фискальный документ ещё печатается; повторите запрос",
        code::CARD_TOKEN_INVALID => "карта не считана или токен устарел; приложите карту снова",
        code::UNKNOWN_CARD => "карта не найдена",
        code::CARD_INACTIVE => "карта неактивна ({status})",
        code::REDEEM_TOO_HIGH => "нельзя списать {requested}: не больше {max}",
        code::CARD_NOT_PRESENT => "карта не приложена",
        code::IDEMPOTENCY_CONFLICT => "ключ операции уже использован для другого запроса",
        code::UNKNOWN_SALE => "продажа не найдена",
        code::INSUFFICIENT_BALANCE => "недостаточно баллов: доступно {balance}",
        code::WRONG_SECRET => "неверный секретный код; осталось попыток: {attempts_left}",
        code::CARD_LOCKED => "карта заблокирована до {until}",
        code::NO_SECRET => {
            "у карты нет секретного кода; зарегистрируйте его, чтобы списывать баллы"
        }
        code::ACCOUNT_EXISTS => "такой счёт уже есть ({field})",
        code::CARD_TAKEN => "номер карты уже выдан",
        code::GROUP_EXISTS => "группа уже есть",
        code::UNKNOWN_GROUP => "группа «{group}» не найдена",
        code::GROUP_IN_USE => "в группе участников: {members}",
        code::NOT_PENDING => "счёт не ожидает подтверждения ({status})",
        code::WRONG_CODE => "неверный код; осталось попыток: {attempts_left}",
        code::CODE_EXPIRED => "срок действия кода истёк; отправьте новый",
        code::CODE_EXHAUSTED => "слишком много неверных кодов; отправьте новый",
        code::RESEND_TOO_SOON => "код уже отправлен; повторите через {retry_after_s} с",
        code::DELIVERY_FAILED => "не удалось отправить код",
        code::CARD_OTHER_PROGRAMME => "карта принадлежит другой программе лояльности",
        code::CODE_WORD_LOCKED => "слишком много неверных кодовых слов; заблокировано до {until}",
        code::REDEEM_BY_CODE_OFF => {
            "в этой программе баллы списываются только по секретному коду карты"
        }
        code::NO_REDEEM_CODE => "код списания не отправлен; отправьте его",
        code::TIERS_NOT_CONFIGURED => "в программе нет уровней",
        code::LEDGER_UNREACHABLE => "центральный сервер лояльности недоступен; повторите позже",
        code::OFFLINE_REDEEM_REFUSED => "без связи с сервером баллы списать нельзя",
        code::SALE_TIME_REFUSED => "время операции {at} не принято",
        code::UNKNOWN_SYNC_ITEM => "операция синхронизации не найдена",
        code::PROGRAMME_INACTIVE => {
            "бонусная программа не действует: баллы не начисляются и не списываются"
        }
        code::UNKNOWN_CERTIFICATE => "подарочный сертификат не найден",
        code::CERTIFICATE_EXPIRED => "срок действия сертификата истёк {expires_at}",
        code::CERTIFICATE_BLOCKED => "сертификат заблокирован",
        code::CERTIFICATE_USED_UP => "сертификат использован полностью",
        code::CERTIFICATE_INSUFFICIENT => "на сертификате только {balance}",
        code::CERTIFICATE_CODE_TAKEN => "сертификат с таким кодом уже есть",
        code::UNKNOWN_REDEMPTION => "оплата сертификатом не найдена",
        code::REFUND_TOO_HIGH => "вернуть на сертификат можно не больше {refundable}",
        _ => return None,
    })
}

/// Fills `{name}` placeholders from `data`; `None` when one is missing,
/// so a half-filled sentence is never shown.
fn fill(template: &str, data: Option<&Value>) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}')? + open;
        let key = &rest[open + 1..close];
        match data?.get(key)? {
            Value::String(s) => out.push_str(s),
            Value::Null => return None,
            v => out.push_str(&v.to_string()),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The error as the cashier reads it: `message` in `lang`, both texts in
/// `data` (`message_en`, `message_ru`). Errors with no Russian text pass
/// unchanged; an error already localised (from the central service) too.
pub fn localize(mut err: RpcError, lang: Language) -> RpcError {
    if err
        .data
        .as_ref()
        .is_some_and(|d| d.get("message_ru").is_some())
    {
        return err;
    }
    let Some(ru) = russian(err.code).and_then(|t| fill(t, err.data.as_ref())) else {
        return err;
    };
    let en = std::mem::take(&mut err.message);
    let data = match err.data.take() {
        Some(Value::Object(m)) => Value::Object(m),
        None => json!({}),
        // A non-object data keeps its place under `detail`.
        Some(other) => json!({ "detail": other }),
    };
    let mut data = data;
    data["message_en"] = Value::String(en.clone());
    data["message_ru"] = Value::String(ru.clone());
    err.message = match lang {
        Language::Ru => ru,
        Language::En => en,
    };
    err.data = Some(data);
    err
}

/// Whether the locale (`LC_ALL`, else `LC_MESSAGES`, else `LANG`, as
/// POSIX orders them) asks for Russian.
pub fn locale_is_russian() -> bool {
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty())
        .is_some_and(|v| v.starts_with("ru"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn russian_goes_in_message_and_english_in_data_and_vice_versa() {
        let e = RpcError::new(
            code::INSUFFICIENT_BALANCE,
            "insufficient balance: 5 available",
        )
        .with_data(json!({ "balance": "5" }));
        let ru = localize(e.clone(), Language::Ru);
        assert_eq!(ru.message, "недостаточно баллов: доступно 5");
        let d = ru.data.unwrap();
        assert_eq!(d["message_en"], "insufficient balance: 5 available");
        assert_eq!(d["balance"], "5");
        let en = localize(e, Language::En);
        assert_eq!(en.message, "insufficient balance: 5 available");
        assert_eq!(
            en.data.unwrap()["message_ru"],
            "недостаточно баллов: доступно 5"
        );
    }

    #[test]
    fn every_cashier_code_has_russian_and_others_pass_unchanged() {
        for c in [
            code::UNKNOWN_CARD,
            code::DEVICE_NOT_FOUND,
            code::FISCAL_DEVICE_ERROR,
        ] {
            assert!(russian(c).is_some(), "{c}");
        }
        let e = RpcError::new(code::INTERNAL_ERROR, "internal error: ledger");
        let out = localize(e, Language::Ru);
        assert_eq!(out.message, "internal error: ledger");
        assert!(out.data.is_none());
        // A placeholder with nothing to fill keeps the English only.
        let e = RpcError::new(code::CARD_INACTIVE, "the card is blocked");
        assert_eq!(localize(e, Language::Ru).message, "the card is blocked");
    }
}
