//! Every string of the console, in Russian and English, in one table (the
//! back office's style; its [`Lang`] is reused).

pub use crate::backoffice::i18n::Lang;

/// A string of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum T {
    Title,
    Token,
    LogIn,
    LogOut,
    BadToken,
    NotAdmin,
    TooMany,
    Devices,
    Device,
    Kind,
    State,
    Since,
    Detail,
    Fix,
    Printers,
    Queue,
    Status,
    TestPrint,
    Preview,
    Queued,
    Fiscal,
    Mode,
    FnExpires,
    OfdUnsent,
    OfdOldest,
    Warnings,
    Feed,
    FeedEmpty,
    Config,
    ConfigOk,
    Ledger,
    Backend,
    Reachable,
    OfflineQueue,
    Failed,
    Yes,
    No,
    None,
}

/// The text of `t` in `lang`.
pub fn tr(lang: Lang, t: T) -> &'static str {
    let (ru, en) = match t {
        T::Title => (
            "Консоль техника posbridge",
            "posbridge technician's console",
        ),
        T::Token => ("Токен администратора", "Admin token"),
        T::LogIn => ("Войти", "Log in"),
        T::LogOut => ("Выйти", "Log out"),
        T::BadToken => ("Неверный токен", "Wrong token"),
        T::NotAdmin => (
            "Этот токен не даёт роль администратора",
            "This token does not grant the admin role",
        ),
        T::TooMany => (
            "Слишком много неудачных попыток, подождите",
            "Too many failed attempts; wait",
        ),
        T::Devices => ("Устройства", "Devices"),
        T::Device => ("Устройство", "Device"),
        T::Kind => ("Тип", "Type"),
        T::State => ("Состояние", "State"),
        T::Since => ("С", "Since"),
        T::Detail => ("Последняя ошибка", "Last error"),
        T::Fix => ("Как исправить", "The fix"),
        T::Printers => ("Принтеры чеков", "Receipt printers"),
        T::Queue => ("Очередь", "Queue"),
        T::Status => ("Статус", "Status"),
        T::TestPrint => ("Тестовая печать", "Test print"),
        T::Preview => ("Предпросмотр", "Preview"),
        T::Queued => ("Задание поставлено в очередь", "Job queued"),
        T::Fiscal => ("Фискальные регистраторы", "Fiscal registers"),
        T::Mode => ("Режим (смена)", "Mode (shift)"),
        T::FnExpires => ("ФН действует до", "ФН expires"),
        T::OfdUnsent => ("Не отправлено в ОФД", "Not sent to the OFD"),
        T::OfdOldest => ("Самый старый неотправленный", "Oldest unsent"),
        T::Warnings => ("Предупреждения", "Warnings"),
        T::Feed => ("Считывания (маскированы)", "Reads (masked)"),
        T::FeedEmpty => ("Ждём считываний…", "Waiting for reads…"),
        T::Config => ("Проверка конфигурации", "Configuration check"),
        T::ConfigOk => ("файл корректен", "the file is valid"),
        T::Ledger => ("Учёт баллов", "Ledger"),
        T::Backend => ("Где", "Backend"),
        T::Reachable => ("Отвечает", "Reachable"),
        T::OfflineQueue => ("Офлайн-очередь", "Offline queue"),
        T::Failed => ("Отклонено", "Refused"),
        T::Yes => ("да", "yes"),
        T::No => ("нет", "no"),
        T::None => ("—", "—"),
    };
    match lang {
        Lang::Ru => ru,
        Lang::En => en,
    }
}
